"""One pipeline at a time per project: an OS lock on `.encoderflow/run.lock`.

    with runlock.hold(root):          # raises AlreadyRunning at once if taken
        ...run stages...

`hold` takes an exclusive, non-blocking `fcntl.flock` on the file and writes
its pid into it. The OS drops a flock when the holding process dies, even on
SIGKILL, so a crashed run never leaves the project locked; the pid left in the
file is only a label (the next holder overwrites it).

Nesting. `encoderflow run` holds the lock and the flow inside it takes it
again (same process), and in a DVC repo every stage is an
`encoderflow stage NAME` subprocess that takes it too. Both are let through:
the holder exports its pid in ENCODERFLOW_RUN_LOCK_PID, and a process finding
the lock taken by itself or by the pid in that variable (its ancestor)
proceeds without locking. Anyone else is refused with
"pipeline already running (pid N)".

Scope: one machine (flock is local; on NFS it may not be honoured). The fd is
not inherited by exec'd children (Python fds are non-inheritable), so a child
that outlives the holder cannot keep the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from components.core.errors import EncoderflowError

DIR = ".encoderflow"
LOCK_FILE = "run.lock"
PID_ENV = "ENCODERFLOW_RUN_LOCK_PID"


class AlreadyRunning(EncoderflowError):
    """Another process holds the project's run lock; `.pid` is its pid (None if unknown)."""

    def __init__(self, pid: int | None, path: Path):
        self.pid = pid
        super().__init__(f"pipeline already running (pid {pid if pid else '?'}); "
                         f"{path} is locked until it ends")


def lock_path(root: str | Path) -> Path:
    return Path(root).resolve() / DIR / LOCK_FILE


def _read_pid(path: Path, tries: int = 20) -> int | None:
    """The pid written by the holder (it writes right after locking: retry briefly)."""
    for _ in range(tries):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():  # keep the folder out of `git status` (like .pytest_cache)
        ignore.write_text("# created by encoderflow\n*\n", encoding="utf-8")
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def holder(root: str | Path) -> int | None:
    """The pid holding the lock of `root`, or None when it is free.

    >>> import tempfile; holder(tempfile.mkdtemp()) is None
    True
    """
    path = lock_path(root)
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(root: str | Path) -> Iterator[None]:
    """Hold the project's run lock for the body (re-entrant for this process and its children)."""
    path = lock_path(root)
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        taken = True
    except BlockingIOError:
        os.close(fd)
        taken = False
    if not taken:
        pid = _read_pid(path)
        if pid is None or str(pid) not in (str(os.getpid()), os.environ.get(PID_ENV)):
            raise AlreadyRunning(pid, path)
        yield  # nested: our own lock, or our ancestor's (e.g. dvc repro -> encoderflow stage)
        return
    saved = os.environ.get(PID_ENV)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.environ[PID_ENV] = str(os.getpid())  # children (stage subprocesses) inherit it
        yield
    finally:
        if saved is None:
            os.environ.pop(PID_ENV, None)
        else:
            os.environ[PID_ENV] = saved
        os.ftruncate(fd, 0)  # a free lock names nobody
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
