"""One pipeline at a time per project: an OS lock on `.encoderflow/run.lock`.

    with runlock.hold(root):          # raises AlreadyRunning at once if taken
        ...run stages...

`hold` takes the lock with the filelock library (an exclusive, non-blocking `fcntl.flock`
on the file) and writes its pid into it. The OS drops a flock when the holding process
dies, even on SIGKILL, so a crashed run never leaves the project locked; the pid in the file
is only a label (the holder writes it on taking the lock and clears it on release).

Nesting. `encoderflow run` holds the lock and the flow inside it takes it again (same
process: the one FileLock instance per path counts the levels), and in a DVC repo every
stage is an `encoderflow stage NAME` subprocess that takes it too. The holder exports its
pid in ENCODERFLOW_RUN_LOCK_PID, and a process finding the lock taken by itself or by the pid
in that variable (its ancestor) proceeds without locking. Anyone else is refused with
"pipeline already running (pid N)".

Scope: one machine (flock is local; on NFS it may not be honoured). The fd is not inherited
by exec'd children (Python fds are non-inheritable), so a child that outlives the holder
cannot keep the lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

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


def _write_pid(fd: int) -> None:
    """filelock's on_acquired hook: the holder's pid is the file's whole content."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _lock(path: Path) -> FileLock:
    """This process's one FileLock of `path` (is_singleton: a nested `hold` re-enters it, from
    any thread), taken at once or never (timeout 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():  # keep the folder out of `git status` (like .pytest_cache)
        ignore.write_text("# created by encoderflow\n*\n", encoding="utf-8")
    return FileLock(path, timeout=0, thread_local=False, is_singleton=True, on_acquired=_write_pid)


def holder(root: str | Path) -> int | None:
    """The pid holding the lock of `root`, or None when it is free.

    >>> import tempfile; holder(tempfile.mkdtemp()) is None
    True
    """
    path = lock_path(root)
    if not path.is_file():
        return None
    probe = FileLock(path, timeout=0)  # not _lock's instance: it fails while anyone, we included, holds it
    try:
        probe.acquire()
    except Timeout:
        return _read_pid(path) or -1
    probe.release()
    return None


@contextlib.contextmanager
def hold(root: str | Path) -> Iterator[None]:
    """Hold the project's run lock for the body (re-entrant for this process and its children)."""
    path = lock_path(root)
    lock = _lock(path)
    try:
        lock.acquire()
    except Timeout:
        pid = _read_pid(path)
        if pid is None or str(pid) not in (str(os.getpid()), os.environ.get(PID_ENV)):
            raise AlreadyRunning(pid, path) from None
        yield  # our ancestor's lock (e.g. dvc repro -> encoderflow stage)
        return
    if lock.lock_counter > 1:  # nested in this process (the flow inside `encoderflow run`)
        try:
            yield
        finally:
            lock.release()
        return
    saved = os.environ.get(PID_ENV)
    try:
        os.environ[PID_ENV] = str(os.getpid())  # children (stage subprocesses) inherit it
        yield
    finally:
        if saved is None:
            os.environ.pop(PID_ENV, None)
        else:
            os.environ[PID_ENV] = saved
        path.write_bytes(b"")  # a free lock names nobody (still held here: nobody else writes)
        lock.release()
