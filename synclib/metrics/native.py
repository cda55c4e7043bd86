"""The C kernel of `region_overlaps` on the CPU, compiled on first use and loaded by ctypes.

The kernel (`_overlaps.c`) is plain C99 with no dependency but libm: it is compiled with the
machine's C compiler (`$CC`, else `cc`) into a cache folder (`$SYNCLIB_CACHE`, else
`~/.cache/synclib`), under a name that hashes the source, so an edit recompiles and two
processes never read a half-written library. Without a compiler, or with `SYNCLIB_NATIVE=0`,
`library()` returns None and `region_overlaps` takes its PyTorch path, which counts the same
(tested) at a few times the cost; a warning says so once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from ..files import cache_root

SOURCE = Path(__file__).with_name("_overlaps.c")
FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC"]


def cache_dir() -> Path:
    return cache_root() / "native"


def _compile(src: bytes) -> Path:
    cc = os.environ.get("CC", "cc")
    key = hashlib.sha256(src + " ".join([cc, *FLAGS, platform.machine(), sys.platform]).encode()).hexdigest()[:16]
    so = cache_dir() / f"overlaps-{key}.so"
    if so.exists():
        return so
    so.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".overlaps-", suffix=".so", dir=so.parent)
    os.close(fd)
    try:
        subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], check=True, capture_output=True, text=True)
        os.replace(tmp, so)  # atomic: a racing process finds a whole library or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return so


@lru_cache(maxsize=1)
def library():
    """The loaded kernel, or None (no compiler, or SYNCLIB_NATIVE=0)."""
    if os.environ.get("SYNCLIB_NATIVE", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(_compile(SOURCE.read_bytes())))
    except (OSError, subprocess.CalledProcessError) as e:
        detail = e.stderr.strip().splitlines()[-1] if isinstance(e, subprocess.CalledProcessError) and e.stderr else e
        warnings.warn(f"synclib: could not build the C kernel {SOURCE.name} ({detail}); part IoU takes the "
                      "slower PyTorch path (install a C compiler, or set CC, to speed it up)", stacklevel=3)
        return None
    f = lib.synclib_region_overlaps
    p, i64, dbl = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    f.argtypes = [p, p, p, i64, i64, i64, i64, i64, i64, p, p, p, dbl, p, p]
    f.restype = ctypes.c_int
    return lib


def region_overlaps(lib, a: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor,
                    ey: torch.Tensor, lam_y: torch.Tensor, ex: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the kernel on CPU tensors; see `synclib.metrics.hits.region_overlaps`."""
    b, n, h, w = a.shape
    k, size = masks.shape[1], masks.shape[-1]
    a = a.detach().float().contiguous()
    t = thresholds.detach().float().contiguous()
    m = masks.detach().contiguous().view(torch.uint8) if masks.dtype == torch.bool else (masks != 0).to(torch.uint8).contiguous()
    ey, ex = ey.contiguous(), ex.contiguous()
    lam_y = lam_y.double().contiguous()
    inter = torch.zeros(b, n, k, dtype=torch.int64)
    area = torch.zeros(b, n, dtype=torch.int64)
    if b and n:
        rc = lib.synclib_region_overlaps(a.data_ptr(), t.data_ptr(), m.data_ptr(), b, n, h, w, k, size,
                                         ey.data_ptr(), lam_y.data_ptr(), ex.data_ptr(), size / w,
                                         inter.data_ptr(), area.data_ptr())
        if rc:
            raise MemoryError(f"synclib's C kernel could not allocate its buffers for {size}x{size} masks")
    return inter, area
