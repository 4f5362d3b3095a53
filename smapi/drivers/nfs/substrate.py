"""The NFS substrate: the file SR's directory substrate on a mounted export, with locks that cross hosts.

Volumes, documents and the journal are files under `<mountpoint>/<sr_uuid>/` exactly as on a file SR (so the
engine's crash-consistency protocol is unchanged); only the locks differ (`leases.py`), and the SR describes
itself by the device_config that reaches it from any host instead of a local path.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from smapi.drivers.nfs.config import NfsTarget
from smapi.drivers.nfs.leases import NfsLock, nfs_lock
from smapi.sr.directory import LOCK_DIR, DirectorySubstrate

#: device_config keys that say where the SR is (what probe returns and attach needs)
PUBLIC_KEYS = ("server", "serverpath", "nfsversion", "port", "options", "timeo")


class NfsSubstrate(DirectorySubstrate):
    def __init__(self, path: str, target: NfsTarget, device_config: Dict[str, str]) -> None:
        super().__init__(path)
        self.target = target
        self.device_config = {k: v for k, v in device_config.items() if k in PUBLIC_KEYS and v}
        self.sr_uuid = os.path.basename(self.path)

    def describe(self) -> Dict[str, str]:
        return dict(self.device_config)

    def probe(self) -> List[DirectorySubstrate]:
        return [NfsSubstrate(found.path, self.target, self.device_config) for found in super().probe()]

    def lock(self, name: str) -> NfsLock:
        return nfs_lock(self.sr_uuid, name, os.path.join(self.path, LOCK_DIR))

    def local_lock_dir(self) -> Optional[str]:
        return None  # leases shared by the hosts, which expire by their own rules
