"""Reading what synclib wrote: every checkpoint, model, config, history, manifest, job or cached
result is read here, so a truncated, empty or foreign file is an error that names the file and
says what to do, never a raw `EOFError` or `KeyError` from deep inside torch or json.

    read_json(path, fix, keys=("train",))    a JSON object with these keys
    load_torch(path, fix, keys=("model",))   a torch.save'd object (weights only)

`fix` is the way out, in words ("delete it and run the command again").

    file_lock(path, wait=True, on_wait=...)  hold a lock file (a run, a run folder, a build)
 The writes are
atomic and fsynced (`synclib.data.format.atomic_write_bytes`), so a crash leaves the last
good file; a file that is still bad was damaged by something else.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["CorruptFile", "Busy", "file_lock", "lock_holder", "read_json", "load_torch", "RETRAIN", "RECOMPUTE"]

RETRAIN = "delete the run folder {folder} and train the run again"
RECOMPUTE = "delete it and run the command again: it is recomputed"


class CorruptFile(ValueError):
    """A file synclib reads is missing a part, truncated or not what it should be."""

    def __init__(self, path: Path, problem: str, fix: str):
        super().__init__(f"{path}: {problem}; {fix.format(folder=path.parent)}")
        self.path = path


def _require(obj, path: Path, keys, fix: str, what: str):
    if not isinstance(obj, dict):
        raise CorruptFile(path, f"holds a {type(obj).__name__}, not {what}", fix)
    missing = [k for k in keys if k not in obj]
    if missing:
        raise CorruptFile(path, f"lacks {missing}: it is not {what}", fix)
    return obj


def read_json(path: str | Path, fix: str = RECOMPUTE, keys=(), what: str = "the object synclib wrote") -> dict:
    """The JSON object at `path`, with `keys` present; CorruptFile naming it otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorruptFile(path, "not found", fix) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptFile(path, f"cannot be read ({type(e).__name__}: {e})", fix) from None
    if not text.strip():
        raise CorruptFile(path, "is empty", fix)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptFile(path, f"is not valid JSON ({e})", fix) from None
    return _require(obj, path, keys, fix, what)


def load_torch(path: str | Path, fix: str = RETRAIN, keys=(), what: str = "a synclib checkpoint"):
    """torch.load(path, weights_only=True) on the CPU; CorruptFile naming the file when it is
    empty, truncated, not a torch file, or lacks `keys`."""

    path = Path(path)
    if not path.is_file():
        raise CorruptFile(path, "not found", fix)
    if path.stat().st_size == 0:
        raise CorruptFile(path, "is empty", fix)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip errors, EOFError, UnpicklingError, ...: one message for all
        first = (str(e).strip().splitlines() or [""])[0][:160]  # torch's own advice would mislead here
        raise CorruptFile(path, f"cannot be read as a torch file ({type(e).__name__}: {first})", fix) from None
    return _require(obj, path, keys, fix, what) if keys else obj


class Busy(RuntimeError):
    """A lock another process holds, when the caller asked not to wait for it."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def lock_holder(path: str | Path) -> str:
    """Who holds the lock file `path`, in words ("pid 123, since 09:14"), as its holder wrote it."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return f"pid {info['pid']}, since {time.strftime('%H:%M', time.localtime(info.get('since', 0)))}"


@contextmanager
def file_lock(path: str | Path, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold `path` exclusively (an advisory `flock`, released by the kernel when the holder exits
    or dies, so a killed holder never leaves a stale lock). The holder writes its pid and start
    time into the file for whoever waits (`lock_holder`).

    When another process holds it: wait (calling `on_wait(holder)` once first), or with
    `wait=False` raise `Busy`. The file is opened without truncation, so a waiter never erases
    the holder's note."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(path)
            if not wait:
                raise Busy(path, holder) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "since": time.time()}))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
