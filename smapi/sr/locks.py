"""Advisory file locks (flock) that work across processes and between threads of one process.

Every per-verb and classic call is its own process, so the engine's mutual exclusion has to live in lock files.
`flock` locks belong to an open file description, so two threads that each open the file exclude each other too.
A thread that already holds a lock may take it again (re-entrant, counted): engine helpers nest freely.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from contextlib import contextmanager, suppress
from typing import Dict, Iterator, List, Optional, Tuple

#: how long a blocking lock waits before the verb fails with a "busy" error
DEFAULT_TIMEOUT = 120.0
_POLL = 0.01

_held = threading.local()


def _table() -> Dict[str, Tuple[int, bool, int]]:
    if not hasattr(_held, "locks"):
        _held.locks = {}
    return _held.locks


class LockTimeout(Exception):
    """The lock stayed busy for the whole timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"{path} still locked after {timeout:.0f}s")
        self.path = path


class FileLock:
    """One lock file. `exclusive=False` takes a shared lock (many readers, no writer)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def held(self) -> bool:
        return self.path in _table()

    def held_exclusively(self) -> bool:
        """This thread holds the lock, and not merely shared."""
        entry = _table().get(self.path)
        return entry is not None and entry[1]

    def acquire(self, *, exclusive: bool = True, timeout: Optional[float] = DEFAULT_TIMEOUT) -> bool:
        """Take the lock; `timeout=0` tries once and returns False when busy, otherwise LockTimeout."""
        table = _table()
        if self.path in table:
            fd, excl, count = table[self.path]
            if exclusive and not excl:
                # Upgrading would let two sharers deadlock each other; the engine never needs it.
                raise RuntimeError(f"cannot upgrade shared lock {self.path} to exclusive")
            table[self.path] = (fd, excl, count + 1)
            return True
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            if not self._wait(fd, op, deadline):
                os.close(fd)
                if timeout == 0:
                    return False
                raise LockTimeout(self.path, timeout or 0)
            if _still_linked(fd, self.path):
                break
            # The holder removed the file (`discard`) while we waited on it: lock the file now at the path.
            os.close(fd)
        table[self.path] = (fd, exclusive, 1)
        return True

    @staticmethod
    def _wait(fd: int, op: int, deadline: Optional[float]) -> bool:
        while True:
            try:
                fcntl.flock(fd, op)
                return True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def covered(self) -> FileLock:
        """Mark this lock as taken right before the SR lock and released with it (the engine's verb locks): a
        substrate whose locks cross hosts may then check it under the SR lock instead of taking it on its own.
        A plain flock is taken as it is."""
        return self

    def discard(self) -> None:
        """Remove the lock file (what it guards is gone); only its exclusive holder may. A waiter that opened the
        old file notices once it gets the lock and locks the file at the path instead."""
        if not self.held_exclusively():
            raise RuntimeError(f"discarding {self.path} needs the lock held exclusively")
        with suppress(FileNotFoundError):
            os.unlink(self.path)

    def release(self) -> None:
        table = _table()
        fd, excl, count = table[self.path]
        if count > 1:
            table[self.path] = (fd, excl, count - 1)
            return
        del table[self.path]
        os.close(fd)  # closing the only descriptor drops the flock

    @contextmanager
    def hold(self, *, exclusive: bool = True, timeout: Optional[float] = DEFAULT_TIMEOUT) -> Iterator[None]:
        self.acquire(exclusive=exclusive, timeout=timeout)
        try:
            yield
        finally:
            self.release()


def _still_linked(fd: int, path: str) -> bool:
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


@contextmanager
def hold_all(locks: List[FileLock], *, exclusive: bool = True,
             timeout: Optional[float] = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Take several locks in path order (a global order, so two callers never deadlock)."""
    taken: List[FileLock] = []
    try:
        for lock in sorted({lk.path: lk for lk in locks}.values(), key=lambda lk: lk.path):
            lock.acquire(exclusive=exclusive, timeout=timeout)
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()
