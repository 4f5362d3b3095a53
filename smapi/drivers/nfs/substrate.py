"""The NFS substrate: the file SR's directory substrate on a mounted export, with locks that cross hosts.

Volumes, documents and the journal are files under `<mountpoint>/<sr_uuid>/` exactly as on a file SR (so the
engine's crash-consistency protocol is unchanged); only the locks differ: a host-local flock under a sanlock
lease whose files are in `<sr>/.sanlock/` (smapi.sr.sanlock), and the SR document is fenced by the SR lease's
version. The SR describes itself by the device_config that reaches it from any host instead of a local path.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional

from smapi.drivers.nfs.config import NfsTarget
from smapi.interface.errors import Activated_on_another_host, Backend_error
from smapi.sr.directory import DirectorySubstrate
from smapi.sr.locks import FileLock
from smapi.sr.runstate import run_dir
from smapi.sr.sanlock.client import MAX_HOSTS, SanlockError
from smapi.sr.sanlock.filestore import DIR_NAME, FileLeaseStore
from smapi.sr.sanlock.locking import PoolLock, pool_wide
from smapi.sr.sanlock.pool import HOST_ID_KEY, Fenced, SrPool, host_uuid, sanlock_name, stamp_generation

#: the activation lease of VDI <uuid> is resource `act-<uuid>` (held by its datapath server process)
ACTIVATION_PREFIX = "act-"
#: device_config keys that say where the SR is (what probe returns and attach needs)
PUBLIC_KEYS = ("server", "serverpath", "nfsversion", "port", "options", "timeo")


class NfsSubstrate(DirectorySubstrate):
    def __init__(self, path: str, target: NfsTarget, device_config: Dict[str, str]) -> None:
        super().__init__(path)
        self.target = target
        self.device_config = {k: v for k, v in device_config.items() if k in PUBLIC_KEYS and v}
        self.sr_uuid = os.path.basename(self.path)
        self._host_id = _host_id(device_config)
        self._pool: Optional[SrPool] = None

    def describe(self) -> Dict[str, str]:
        return dict(self.device_config)

    def probe(self) -> List[DirectorySubstrate]:
        return [NfsSubstrate(found.path, self.target, self.device_config) for found in super().probe()]

    def pool(self) -> SrPool:
        """This SR's sanlock leases (lockspace `smapi-<sr>`, files in `<sr>/.sanlock/`)."""
        if self._pool is None:
            self._pool = SrPool(self.sr_uuid, FileLeaseStore(self.lease_dir()), host_uuid(run_dir()), self._host_id)
        return self._pool

    def lease_dir(self) -> str:
        return os.path.join(self.path, DIR_NAME)

    def lock(self, name: str) -> FileLock:
        local = os.path.join(run_dir(), "locks", "nfs", self.sr_uuid, name)
        return PoolLock(local, self.pool(), name) if pool_wide(name) else FileLock(local)

    def local_lock_dir(self) -> Optional[str]:
        return None  # its locks stand under sanlock leases shared by the hosts: none is swept as stale here

    def prepare_activation(self, vdi: str) -> None:
        """Format `act-<vdi>` at VDI.attach (a 1 MiB lease file made exactly once: mkdir, create, sanlock's write,
        rename), so VDI.activate only takes it."""
        pool = self.pool()
        try:
            pool.store.resource_area(sanlock_name(ACTIVATION_PREFIX + vdi), pool.lockspace)
        except SanlockError as e:
            raise Backend_error.classic("VDIUnavailable", f"VDI {vdi}: formatting its activation lease: {e}") from e

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

    def store_document(self, key: str, value: Dict[str, Any]) -> None:
        if key == self.SR_DOCUMENT:
            try:
                value = stamp_generation(self.pool(), self.load_document(key), value)
            except Fenced as e:
                raise Backend_error.classic("SRUnavailable", str(e)) from e
        super().store_document(key, value)


def _host_id(device_config: Dict[str, str]) -> Optional[int]:
    text = (device_config.get(HOST_ID_KEY) or "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_HOSTS:
        raise Backend_error.classic("SRUnavailable", f"device_config host_id={text!r}: a number 1..{MAX_HOSTS} that no "
                                                     "other host of the pool uses")
    return int(text)
