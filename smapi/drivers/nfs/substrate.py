"""The NFS substrate: the file SR's directory substrate on a mounted export, with locks that cross hosts.

Volumes, documents and the journal are files under `<mountpoint>/<sr_uuid>/` exactly as on a file SR (so the
engine's crash-consistency protocol is unchanged); only the locks differ: a host-local flock under a sanlock
lease whose files are in `<sr>/.sanlock/` (smapi.sr.sanlock), and the SR document is fenced by the SR lease's
version. The SR describes itself by the device_config that reaches it from any host instead of a local path.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from smapi.drivers.nfs.config import NfsTarget
from smapi.sr.directory import DirectorySubstrate
from smapi.sr.locks import FileLock
from smapi.sr.runstate import run_dir
from smapi.sr.sanlock.filestore import DIR_NAME, FileLeaseStore
from smapi.sr.sanlock.pool import SrPool, host_uuid
from smapi.sr.sanlock.shared import ACTIVATION_PREFIX, PooledSubstrate, host_id_from

#: device_config keys that say where the SR is (what probe returns and attach needs)
PUBLIC_KEYS = ("server", "serverpath", "nfsversion", "port", "options", "timeo")


class NfsSubstrate(PooledSubstrate, DirectorySubstrate):
    def __init__(self, path: str, target: NfsTarget, device_config: Dict[str, str]) -> None:
        super().__init__(path)
        self.target = target
        self.device_config = {k: v for k, v in device_config.items() if k in PUBLIC_KEYS and v}
        self.sr_uuid = os.path.basename(self.path)
        self._host_id = host_id_from(device_config)
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
        return self.pool_lock(os.path.join(run_dir(), "locks", "nfs", self.sr_uuid, name), name)

    def local_lock_dir(self) -> Optional[str]:
        return None  # its locks stand under sanlock leases shared by the hosts: none is swept as stale here

    def store_document(self, key: str, value: Dict[str, Any]) -> None:
        if key == self.SR_DOCUMENT:
            value = self.fenced(self.load_document(key), value)
        super().store_document(key, value)


__all__ = ["ACTIVATION_PREFIX", "NfsSubstrate", "PUBLIC_KEYS"]
