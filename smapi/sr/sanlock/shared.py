"""What every shared SR does with its sanlock leases, whatever storage they live on (NFS files, an LVM volume).

* `PooledSubstrate`: a substrate mixin giving the engine's locks (a host-local flock under a pool-wide lease for
  `sr`, `gc` and `vdi-*`), the activation lease of a VDI's datapath server (`act-<uuid>`), the question "is this
  VDI active on another host", and the fencing of the SR document by the SR lease's version.
* `joined_for_attach`, `leave`, `refuse_destroy_while_shared`: the SR.attach / SR.detach / SR.destroy steps of a
  shared SR's driver.
* `host_id_from`: the optional `host_id` of a device_config, checked.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, Optional

from smapi.interface.errors import Activated_on_another_host, Backend_error
from smapi.sr.locks import FileLock
from smapi.sr.sanlock.client import MAX_HOSTS, SanlockError
from smapi.sr.sanlock.errors import sanlock_errors
from smapi.sr.sanlock.locking import PoolLock, pool_wide
from smapi.sr.sanlock.pool import HOST_ID_KEY, Fenced, SrPool, stamp_generation

#: the activation lease of VDI <uuid> is resource `act-<uuid>` (held by its datapath server process)
ACTIVATION_PREFIX = "act-"


def host_id_from(device_config: Dict[str, str]) -> Optional[int]:
    """device_config `host_id` (1..MAX_HOSTS), or None when absent (then one is allocated)."""
    text = (device_config.get(HOST_ID_KEY) or "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_HOSTS:
        raise Backend_error.classic("SRUnavailable", f"device_config host_id={text!r}: a number 1..{MAX_HOSTS} that no "
                                                     "other host of the pool uses")
    return int(text)


class PooledSubstrate:
    """Mixin for the substrate of a shared SR: the subclass says where its pool is (`pool`)."""

    def pool(self) -> SrPool:
        raise NotImplementedError

    def pool_lock(self, local_path: str, name: str) -> FileLock:
        """The engine's lock `name`: pool-wide names under their sanlock lease, the others host-local."""
        return PoolLock(local_path, self.pool(), name) if pool_wide(name) else FileLock(local_path)

    def activation_lease(self, vdi: str, *, readonly: bool) -> Optional[Callable[[int], None]]:
        """The datapath server of `vdi` holds `act-<vdi>` (exclusive read-write, shared read-only): a second host
        cannot activate it, verbs elsewhere see it active, and sanlock kills the server if this host loses the
        lockspace."""
        pool = self.pool()

        def take(pid: int) -> None:
            try:
                other = pool.take_for(pid, ACTIVATION_PREFIX + vdi, shared=readonly)
            except SanlockError as e:
                raise Backend_error.classic("VDIUnavailable", f"VDI {vdi}: activation lease: {e}") from e
            if other is not None:
                raise Activated_on_another_host(pool.host_name(other))

        return take

    def active_elsewhere(self, vdi: str) -> Optional[str]:
        pool = self.pool()
        try:
            other = pool.held_elsewhere(ACTIVATION_PREFIX + vdi)
        except SanlockError as e:
            raise Backend_error.classic("SRUnavailable", f"VDI {vdi}: reading its activation lease: {e}") from e
        return None if other is None else pool.host_name(other)

    def fenced(self, stored: Optional[Dict[str, Any]], value: Dict[str, Any]) -> Dict[str, Any]:
        """The SR document `value` stamped with this process's SR lease version; SRUnavailable when `stored` was
        written under a newer one (this process lost the SR lease: what it would write is stale)."""
        try:
            return stamp_generation(self.pool(), stored, value)
        except Fenced as e:
            raise Backend_error.classic("SRUnavailable", str(e)) from e


@contextlib.contextmanager
def joined_for_attach(pool: SrPool, sr: str, join: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """SR.attach: join the SR's lockspace (`join`, default `pool.join`), then run the rest of the attach; leave
    again if that fails."""
    with sanlock_errors(f"SR.attach {sr}: joining the SR's lockspace"):
        (join or pool.join)()
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            pool.leave()
        raise


def leave(pool: SrPool, sr: str) -> None:
    """SR.detach: leave the SR's lockspace (after the engine released everything of this host)."""
    with sanlock_errors(f"SR.detach {sr}: leaving the SR's lockspace"):
        pool.leave()


def refuse_destroy_while_shared(pool: SrPool, sr: str) -> None:
    """SR.destroy: SRInUse, naming them, while other live hosts are in the SR's lockspace."""
    with sanlock_errors(f"SR.destroy {sr}"):
        others = pool.other_live_hosts()
    if others:
        names = ", ".join(pool.host_name(h) for h in others)
        raise Backend_error.classic("SRInUse", f"SR {sr} is attached on other live hosts ({names}); detach it there "
                                               "first")
