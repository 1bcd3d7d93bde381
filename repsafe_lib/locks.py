"""One writer per outputs directory: exclusive locks that the system drops with their holder.

The pipeline holds `outputs/<profile>/.locks/pipeline.lock` for its whole run, and each notebook's
`artifacts.Run` holds `outputs/<profile>/.locks/NN_name.lock` (the pipeline's kernels are child
processes that lock their notebook, so the two never block each other). A second run that asks for a
lock already held stops at once with `RunLockedError`, whose message names the holder (pid, host,
command line, start time, recorded in the lock file) and the lock file.

The locks are `flock`s: the operating system releases one when its process ends, even by SIGKILL,
so a crashed run never leaves a stale lock; the file itself stays and only tells who held it last. A
process that already holds a lock takes it again at once (a notebook rerun in the same kernel).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shlex
import socket
import sys
from pathlib import Path

from repsafe_lib.paths import profile_dir

LOCKS_DIR = ".locks"

_held: dict[Path, int] = {}  # lock file -> the descriptor holding it, in this process


class RunLockedError(RuntimeError):
    """Another process holds the lock: the message names it and the lock file."""


def pipeline_lock_path(profile: str) -> Path:
    return profile_dir(profile) / LOCKS_DIR / "pipeline.lock"


def notebook_lock_path(profile: str, notebook: str) -> Path:
    return profile_dir(profile) / LOCKS_DIR / f"{notebook}.lock"


def launched_rank() -> int:
    """This process's rank under `accelerate launch` / `torchrun` (which set $RANK); 0 otherwise.
    Only rank 0 of a multi-process run locks: the other ranks belong to the same run."""
    return int(os.environ.get("RANK", "0"))


def holder_record() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(shlex.join(sys.orig_argv).split())[:300],  # one line, for messages
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _key(path: str | Path) -> Path:
    """One name per lock file, however the path was spelled."""
    path = Path(path)
    return path.parent.resolve() / path.name


def describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
            f" ({holder['command']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is still writing its record"  # it has locked, not yet written


def acquire(path: str | Path) -> Path:
    """Hold the lock file `path` until `release` or this process's exit; raise `RunLockedError`
    at once if another process holds it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    key = _key(path)
    if key in _held:
        return key
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by the kernels we start
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLockedError(
            f"{path}: another run holds this lock: {describe_holder(key)}; wait for it to finish"
            " or stop it, then run again (the lock goes with its process)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    record = (json.dumps(holder_record()) + "\n").encode()
    os.pwrite(fd, record, 0)
    os.ftruncate(fd, len(record))
    _held[key] = fd
    return key


def release(path: str | Path) -> None:
    """Give the lock back (nothing if this process does not hold it). The file stays: removing it
    could let two runs lock two different files of the same name."""
    fd = _held.pop(_key(path), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _forget_inherited() -> None:
    # A forked child shares its parent's locks; it must neither unlock them nor claim them.
    _held.clear()


os.register_at_fork(after_in_child=_forget_inherited)
