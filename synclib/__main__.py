"""`python -m synclib ...`: the same commands as `synclib ...`."""

import sys

from .cli import main

sys.exit(main())
