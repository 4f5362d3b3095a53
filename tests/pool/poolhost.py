"""A simulated pool host that drives one storage driver: `call` runs a verb in one of the host's processes.

Driver-agnostic: the NFS, LVM and iSCSI pool tests wrap a `SimHost` in a `PoolHost` for their driver (adding what
the driver needs on that host: its mounts to undo, its lvm directories) and share everything else here.
"""

from __future__ import annotations

from typing import Any, List

from tests.pool.conftest import SimHost
from tests.pool.hostproc import HostProcess

#: run once in every host process: `call(verb, **args)` runs a storage verb as that host
PRELUDE = """
from smapi.core.driver import load_driver
driver = load_driver(driver_spec)
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


class PoolHost:
    def __init__(self, host: SimHost, driver_spec: str) -> None:
        self.host = host
        self.name = host.name
        self.driver_spec = driver_spec
        self.main = self.process()

    def process(self) -> HostProcess:
        """Another process of this host with the driver loaded (several: the host's concurrent verb processes)."""
        proc = self.host.process()
        proc.run(PRELUDE, driver_spec=self.driver_spec)
        return proc

    def processes(self, n: int) -> List[HostProcess]:
        return [self.process() for _ in range(n)]

    def call(self, verb: str, **args: Any) -> Any:
        return self.main.run("result = call(verb, **args)", verb=verb, args=args)

    def write(self, sr: str, vdi: str, offset: int, data: str) -> None:
        self.main.run("write(sr, vdi, offset, data)", sr=sr, vdi=vdi, offset=offset, data=data)

    def read(self, sr: str, vdi: str, offset: int, length: int) -> str:
        return self.main.run("result = read(sr, vdi, offset, length)", sr=sr, vdi=vdi, offset=offset,
                             length=length)

    def host_id(self, sr: str) -> int:
        """This host's id in the SR's lockspace (allocated at its first attach)."""
        return int(self.main.run("result = driver.engine_for(sr).substrate.pool().host_id()", sr=sr))
