"""Helpers of the NFS pool tests: an SR on a real ganesha export and hosts that call the nfs driver."""

from __future__ import annotations

import os
import uuid
from typing import Any, Dict, Tuple

from tests.nfs.factory import device_config, unmount_all
from tests.nfs.ganesha import GaneshaServer
from tests.pool.conftest import SimHost
from tests.pool.hostproc import HostProcess

#: run once in every host process: `call(verb, **args)` runs a storage verb as that host
PRELUDE = """
from smapi.core.driver import load_driver
driver = load_driver("smapi.drivers.nfs:NfsDriver")
dispatcher = driver.dispatcher("storage")
def call(verb, **args):
    return dispatcher.call(verb, {"dbg": "tests/pool", **args})
def write(sr, vdi, offset, data):
    h = driver.open_vdi(sr, vdi, writable=True)
    try:
        h.write(offset, data.encode() if isinstance(data, str) else data)
        h.flush()
    finally:
        h.close()
def read(sr, vdi, offset, length):
    h = driver.open_vdi(sr, vdi)
    try:
        return bytes(h.read(offset, length)).decode(errors="replace")
    finally:
        h.close()
"""


def nfs_env(server: GaneshaServer) -> Dict[str, str]:
    return {"SMAPI_GC": "sync", "SMAPI_NFS_CLIENT": "fuse", **server.client_env()}


def new_sr(server: GaneshaServer) -> Tuple[str, Dict[str, str]]:
    sub = f"pool-{uuid.uuid4().hex[:10]}"
    os.makedirs(os.path.join(server.export_dir, sub))
    return str(uuid.uuid4()), device_config(server, f"{server.serverpath}/{sub}",
                                           "3" if server.version == "3" else "4.1")


class NfsHost:
    """A simulated host using the NFS driver: `call` runs a verb in one of its processes."""

    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.name = host.name
        host.cleanups.append(lambda: unmount_all(host.run_dir))
        self.main = self.process()

    def process(self) -> HostProcess:
        proc = self.host.process()
        proc.run(PRELUDE)
        return proc

    def call(self, verb: str, **args: Any) -> Any:
        return self.main.run("result = call(verb, **args)", verb=verb, args=args)

    def write(self, sr: str, vdi: str, offset: int, data: str) -> None:
        self.main.run("write(sr, vdi, offset, data)", sr=sr, vdi=vdi, offset=offset, data=data)

    def read(self, sr: str, vdi: str, offset: int, length: int) -> str:
        return self.main.run("result = read(sr, vdi, offset, length)", sr=sr, vdi=vdi, offset=offset,
                             length=length)
