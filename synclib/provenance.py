"""Where a number came from: the checkout's commit, and hashes of the source it depends on."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import platform
import subprocess
from pathlib import Path

import torch

from .methods import METHODS
from .profile import repo_root

__all__ = ["commit", "source_hash", "training_source", "environment", "distributions", "TRAIN_SOURCES"]

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


# What a run's weights depend on besides its config and its data: the losses, the networks,
# the training loop, the data format and the method interface. A method's own file is added
# per run (`training_source`), so a new method file retrains nothing else; a README or a
# notebook edit retrains nothing at all.
TRAIN_SOURCES = ("losses.py", "models.py", "train.py", "data/__init__.py", "data/format.py",
                 "data/dataset.py", "methods/base.py")


def training_source(method: str) -> str:
    """The source hash of what training `method` runs: TRAIN_SOURCES and the method's file."""

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; registered: {sorted(METHODS)}")
    own = Path(inspect.getfile(METHODS[method])).resolve().relative_to(Path(__file__).resolve().parent).as_posix()
    return source_hash(*TRAIN_SOURCES, own)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | None = None) -> dict:
    """What made a number: torch and Python versions, threads, and the CPU or GPU model."""

    env = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
           "cpu": _cpu_model(), "cpus": os.cpu_count(), "device": device or "cpu"}
    if device and device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def distributions() -> dict[str, str]:
    """Every installed distribution's version ({"numpy": "2.4.6", ...}, sorted by name), as
    importlib.metadata sees this interpreter's environment: what a book's numbers were made with."""
    found = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name:
            found[name] = d.version
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
