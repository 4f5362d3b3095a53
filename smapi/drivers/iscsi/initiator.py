"""Logging in to a LUN behind one small interface: the kernel initiator where the host has one, userspace else.

`initiators.initiator()` picks: `SMAPI_ISCSI_CLIENT=kernel|userspace` forces one; by default the kernel initiator
is used when the kernel has iSCSI (`/sys/class/iscsi_transport`) and iscsiadm is installed, else the userspace one
(`userspace.py`: qemu-storage-daemon's FUSE export over libiscsi, and a loop device on it). Both yield a local
block device, so the LVM SR on top never knows which one runs.

Each login keeps its host-local state in a session directory (``<run>/iscsi/<sr>/session.json``): which
initiator, the device, and the processes and mounts it made, so `logout` (or the next `login` after a crash or a
restart) releases exactly those.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, Optional

from smapi.common.files import atomic_write
from smapi.drivers.iscsi.config import IscsiTarget
from smapi.drivers.iscsi.libiscsi import LunInfo

CLIENT_ENV = "SMAPI_ISCSI_CLIENT"
STATE_FILE = "session.json"


def read_state(session_dir: str) -> Dict[str, Any]:
    try:
        with open(os.path.join(session_dir, STATE_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_state(session_dir: str, state: Dict[str, Any]) -> None:
    os.makedirs(session_dir, mode=0o700, exist_ok=True)
    path = os.path.join(session_dir, STATE_FILE)
    atomic_write(path, json.dumps(state))


def remove_session_dir(session_dir: str) -> None:
    shutil.rmtree(session_dir, ignore_errors=True)


class Initiator:
    """How a host reaches a LUN as a local block device and lets it go again."""

    name = "abstract"

    @classmethod
    def available(cls) -> Optional[str]:
        """None when usable on this host, else why not."""
        raise NotImplementedError

    def login(self, target: IscsiTarget, lun: LunInfo, session_dir: str) -> str:
        """The LUN's local block device. Idempotent: a healthy session is reused, a broken one replaced."""
        raise NotImplementedError

    def logout(self, session_dir: str) -> None:
        """Release every process, device and mount of the session (also those of a crashed one); idempotent."""
        raise NotImplementedError

    def device(self, session_dir: str) -> Optional[str]:
        """The session's block device while the session is intact (None when it is gone or broken)."""
        raise NotImplementedError
