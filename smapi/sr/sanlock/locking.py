"""The engine's lock (FileLock's API) for shared SRs: a host-local flock, then a sanlock lease pool-wide.

1. the host-local `FileLock` (`<run>/locks/<driver>/<sr>/<name>`) orders threads and processes of this host,
   shared or exclusive, re-entrant, exactly as on a file SR;
2. the outermost hold of a thread then takes the sanlock resource of the same name for this process (counted
   across the process's threads), so exactly one host at a time changes the SR (`sr`), collects (`gc`) or
   changes a VDI's volumes (`vdi-<uuid>`).

Names other than those (`gc-queue`: one waiting collector per host) stay host-local.

**VDI leases covered by the SR lease.** A verb's VDI locks (`FileLock.covered()`: the engine's `locked`, VDI locks
then the SR lock, released together) take no `vdi-<uuid>` ballot of their own: once this process holds the SR
lease, the VDI lease's owners are read instead (nothing at all when it was never formatted), and the verb goes on
when no other live host holds it. Why this is safe: every process that takes a `vdi-<uuid>` lease on its own (a
data handle, the collector, a scratch upload) takes the SR lease *after* it and does nothing with the VDI before
(it loads the SR document under the SR lease, then opens or changes volumes); so a host that gets the VDI lease
while this verb holds the SR lease waits for the SR lease and then sees the verb's result, and one that got it
before is seen in the owners read. When another host does hold it, the SR lease is given back and the VDI lease
taken the ordinary way (waiting as before, without holding the SR lease meanwhile), then the SR lease again, and
every covered VDI is read again. A thread that holds the SR lock already takes its VDI leases as before. Saves a
ballot and its release per verb on a VDI, and the formatting of a VDI lease that only verbs ever used.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Dict, List, Optional, Set, Tuple

from smapi.interface.errors import Activated_on_another_host, Backend_error
from smapi.sr.locks import DEFAULT_TIMEOUT, FileLock, LockTimeout
from smapi.sr.sanlock.client import SanlockError
from smapi.sr.sanlock.pool import SrPool

POOL_WIDE = ("sr", "gc")

_thread = threading.local()


def _waiting() -> Dict[str, List[PoolLock]]:
    """This thread's covered VDI locks (outermost holds) not yet checked under the SR lease, per lockspace."""
    if not hasattr(_thread, "waiting"):
        _thread.waiting = {}
    return _thread.waiting


def _covered_now() -> Set[Tuple[str, str]]:
    """(lockspace, name) of this thread's VDI locks held without a lease of their own (checked under the SR's)."""
    if not hasattr(_thread, "covered"):
        _thread.covered = set()
    return _thread.covered


def pool_wide(name: str) -> bool:
    return name in POOL_WIDE or name.startswith("vdi-")


class PoolLock(FileLock):
    def __init__(self, local_path: str, pool: SrPool, name: str) -> None:
        super().__init__(local_path)
        self.pool = pool
        self.name = name
        #: a VDI lock taken right before the SR lock (`covered()`): its lease is checked under the SR lease
        self._covered = False

    def covered(self) -> FileLock:
        self._covered = self.name.startswith("vdi-")
        return self

    def _sr_flock_held(self) -> bool:
        # the SR lock's host-local file sits beside this one (`<run>/locks/<driver>/<sr>/sr`)
        return FileLock(os.path.join(os.path.dirname(self.path), "sr")).held()

    def acquire(self, *, exclusive: bool = True, timeout: Optional[float] = DEFAULT_TIMEOUT) -> bool:
        outermost = not self.held()
        start = time.monotonic()
        if not super().acquire(exclusive=exclusive, timeout=timeout):
            return False
        if not outermost:
            return True
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        if self._covered and exclusive and not self._sr_flock_held():
            # checked once this thread holds the SR lease (the module's doc says why that is safe); a thread that
            # holds the SR lock already takes the VDI lease as before (it could not give the SR lease back to wait)
            _waiting().setdefault(self.pool.lockspace, []).append(self)
            _covered_now().add((self.pool.lockspace, self.name))
            return True
        if not self._take(exclusive, remaining, timeout):
            return False
        if self.name == "sr":
            self._check_covered(exclusive, remaining)
        return True

    def _take(self, exclusive: bool, remaining: Optional[float], timeout: Optional[float]) -> bool:
        try:
            taken = self.pool.take(self.name, shared=not exclusive, timeout=remaining)
        except SanlockError as e:
            super().release()
            raise self._unusable(e) from e
        except BaseException:
            super().release()
            raise
        if taken:
            return True
        super().release()
        if timeout == 0:
            return False  # a try (the collector's): the caller skips what is busy
        if self.name.startswith("vdi-"):
            self._refuse_if_elsewhere()
        raise LockTimeout(f"sanlock lease {self.pool.lockspace}:{self.name}", timeout or 0)

    def _check_covered(self, exclusive: bool, remaining: Optional[float]) -> None:
        """Under the SR lease just taken: this thread's covered VDI locks, free on every other live host."""
        waiting = _waiting().pop(self.pool.lockspace, [])
        deadline = None if remaining is None else time.monotonic() + remaining
        sr_held = True
        try:
            while True:
                busy = [lk for lk in waiting if self._elsewhere(lk.name) is not None]
                if not busy:
                    return
                # Another host holds one: wait for it the ordinary way, without keeping the SR lease meanwhile
                # (that host may need the SR lease to finish), then take the SR lease again.
                self.pool.give(self.name)
                sr_held = False
                for lk in busy:
                    if not self.pool.take(lk.name, timeout=_left(deadline)):
                        lk._refuse_if_elsewhere()
                        raise LockTimeout(f"sanlock lease {self.pool.lockspace}:{lk.name}", remaining or 0)
                    _covered_now().discard((self.pool.lockspace, lk.name))  # it has a lease of its own now
                    waiting.remove(lk)
                if not self.pool.take(self.name, shared=not exclusive, timeout=_left(deadline)):
                    raise LockTimeout(f"sanlock lease {self.pool.lockspace}:{self.name}", remaining or 0)
                sr_held = True
                # the SR lease was given back meanwhile: every VDI still covered is read again
        except BaseException as e:
            if sr_held:
                with contextlib.suppress(SanlockError, OSError):
                    self.pool.give(self.name)
            super().release()
            if isinstance(e, SanlockError):
                raise self._unusable(e) from e
            raise

    def _elsewhere(self, name: str) -> Optional[int]:
        try:
            return self.pool.held_elsewhere(name)
        except SanlockError as e:
            raise self._unusable(e) from e

    def release(self) -> None:
        super().release()
        if self.held():
            return
        key = (self.pool.lockspace, self.name)
        if key in _covered_now():
            _covered_now().discard(key)
            waiting = _waiting().get(self.pool.lockspace, [])
            if self in waiting:
                waiting.remove(self)
            return  # no lease of its own
        self.pool.give(self.name)


    def _refuse_if_elsewhere(self) -> None:
        """A VDI lease another host keeps: that host has the VDI active (a verb would have finished by now)."""
        try:
            others = [h for h in self.pool.holders(self.name) if h != self.pool.host_id()]
        except (SanlockError, OSError):
            return
        if others:
            raise Activated_on_another_host(self.pool.host_name(others[0]))

    def _unusable(self, e: SanlockError) -> Exception:
        if e.rv in (-28, -241):  # ENOSPC / SANLK_ACQUIRE_LOCKSPACE: this host is not in the lockspace
            return Backend_error.classic(
                "SRUnavailable", f"this host has not joined SR {self.pool.sr}'s lockspace (attach the SR first): {e}")
        return Backend_error.classic("SRUnavailable", f"sanlock lease {self.name} of SR {self.pool.sr}: {e}")


def _left(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
