"""Helpers of the NFS pool tests: an SR on a real ganesha export and hosts that call the nfs driver."""

from __future__ import annotations

import os
import uuid
from typing import Dict, Tuple

from tests.nfs.factory import device_config, unmount_all
from tests.nfs.ganesha import GaneshaServer
from tests.pool.conftest import SimHost
from tests.pool.poolhost import PoolHost


def nfs_env(server: GaneshaServer) -> Dict[str, str]:
    return {"SMAPI_GC": "sync", "SMAPI_NFS_CLIENT": "fuse", **server.client_env()}


def new_sr(server: GaneshaServer) -> Tuple[str, Dict[str, str]]:
    sub = f"pool-{uuid.uuid4().hex[:10]}"
    os.makedirs(os.path.join(server.export_dir, sub))
    return str(uuid.uuid4()), device_config(server, f"{server.serverpath}/{sub}",
                                           "3" if server.version == "3" else "4.1")


class NfsHost(PoolHost):
    """A simulated host using the NFS driver; its FUSE mounts are undone when it closes."""

    def __init__(self, host: SimHost) -> None:
        host.cleanups.append(lambda: unmount_all(host.run_dir))
        super().__init__(host, "smapi.drivers.nfs:NfsDriver")
