"""Count the reads that should happen once: with $SYNCLIB_IO_LOG set, every profile parse and
manifest read appends one line `<kind>\t<path>` to that file, from any process (the training
subprocesses and notebook kernels inherit the variable). Tests use it to prove a study is
planned once; unset, it costs nothing."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["record"]


def record(kind: str, path: str | Path) -> None:
    log = os.environ.get("SYNCLIB_IO_LOG")
    if log:
        with open(log, "a") as f:  # one short write in append mode: lines of processes never interleave
            f.write(f"{kind}\t{Path(path).resolve()}\n")
