"""Reading and writing what synclib keeps: every checkpoint, model, config, history, manifest, job
or cached result is written here atomically (a temp file, fsynced, renamed; the folder fsynced
too) and read here, so a crash leaves the last good file, and a truncated, empty or foreign file
is an error that names the file and says what to do, never a raw `EOFError` or `KeyError` from
deep inside torch or json.

    atomic_write_bytes(path, data), atomic_write_text(path, text)
    remove_temp_files(folder)                the temp files a killed writer left

    read_json(path, fix, keys=("train",))    a JSON object with these keys
    load_torch(path, fix, keys=("model",))   a torch.save'd object (weights only)
    file_lock(path, wait=True, on_wait=...)  hold a lock file (a run, a run folder, a build)
    cache_root()                             where derived files live ($SYNCLIB_CACHE, ~/.cache/synclib)

`fix` is the way out, in words ("delete it and run the command again"). A file that is still
bad after synclib's atomic writes was damaged by something else.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["key_digest", "CorruptFile", "Busy", "file_lock", "lock_holder", "read_json", "load_torch", "atomic_write_bytes",
           "atomic_write_text", "remove_temp_files", "cache_root", "RETRAIN", "RECOMPUTE"]

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


def lock_holder(path: str | Path, patience: float = 2.0) -> str:
    """Who holds the lock file `path`, in words ("pid 123, since 09:14"), as its holder wrote it.
    A holder that has just taken the lock may not have written its note yet: read again for up
    to `patience` seconds before answering "another process"."""
    deadline = time.monotonic() + patience
    while True:
        try:
            info = json.loads(Path(path).read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if isinstance(info, dict) and "pid" in info:
            return f"pid {info['pid']}, since {time.strftime('%H:%M', time.localtime(info.get('since', 0)))}"
        if time.monotonic() >= deadline:
            return "another process"
        time.sleep(0.05)


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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path through a temp file, fsynced, and a rename: never a half-written
    file, even after a power loss (the folder is fsynced too, so the rename itself lasts).
    A temp file a killed process leaves (`.NAME.*.tmp`) is removed by `remove_temp_files`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a file system that cannot open folders: the rename is what it offers
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files of `atomic_write_bytes` that a killed process left in `folder`
    (only when no other process writes there: a run holds its folder's lock). Returns them."""
    gone = []
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        gone.append(tmp)
    return gone


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def cache_root() -> Path:
    """Where synclib keeps what it derives and can derive again (the compiled kernel, decoded
    splits): `$SYNCLIB_CACHE`, else `~/.cache/synclib`. Deleting it loses nothing."""
    return Path(os.environ.get("SYNCLIB_CACHE") or Path.home() / ".cache" / "synclib")


def key_digest(key: dict) -> str:
    """The name a stored thing gets from what it depends on: the first 12 hex digits of sha256
    over its key as sorted JSON (a run's hash; its cached evaluations, analyses and probe)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
