"""The engine's lock (FileLock's API) for shared SRs: a host-local flock, then a sanlock lease pool-wide.

1. the host-local `FileLock` (`<run>/locks/<driver>/<sr>/<name>`) orders threads and processes of this host,
   shared or exclusive, re-entrant, exactly as on a file SR;
2. the outermost hold of a thread then takes the sanlock resource of the same name for this process (counted
   across the process's threads), so exactly one host at a time changes the SR (`sr`), collects (`gc`) or
   changes a VDI's volumes (`vdi-<uuid>`).

Names other than those (`gc-queue`: one waiting collector per host) stay host-local.
"""

from __future__ import annotations

import time
from typing import Optional

from smapi.interface.errors import Activated_on_another_host, Backend_error
from smapi.sr.locks import DEFAULT_TIMEOUT, FileLock, LockTimeout
from smapi.sr.sanlock.client import SanlockError
from smapi.sr.sanlock.pool import SrPool

POOL_WIDE = ("sr", "gc")


def pool_wide(name: str) -> bool:
    return name in POOL_WIDE or name.startswith("vdi-")


class PoolLock(FileLock):
    def __init__(self, local_path: str, pool: SrPool, name: str) -> None:
        super().__init__(local_path)
        self.pool = pool
        self.name = name

    def acquire(self, *, exclusive: bool = True, timeout: Optional[float] = DEFAULT_TIMEOUT) -> bool:
        outermost = not self.held()
        start = time.monotonic()
        if not super().acquire(exclusive=exclusive, timeout=timeout):
            return False
        if not outermost:
            return True
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
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

    def release(self) -> None:
        super().release()
        if not self.held():
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
