"""Where a number came from: the checkout's commit, and hashes of the source it depends on."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from .profile import repo_root

__all__ = ["commit", "source_hash"]

_PKG = Path(__file__).resolve().parent


def commit() -> str:
    """The git commit of the checkout (with '+dirty' if it has uncommitted changes)."""
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def source_hash(*paths: str) -> str:
    """sha256 (16 hex digits) over synclib's files or folders given relative to the package
    (e.g. "probe.py", "metrics"): what a cached computation must be recomputed after."""
    h = hashlib.sha256()
    for rel in paths:
        p = _PKG / rel
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(f.relative_to(_PKG).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
