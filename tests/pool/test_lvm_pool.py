"""A shared LVM SR (`shared=true`) on one loop device seen by two simulated hosts, each with its own sanlock
daemon, run directory, LVM lock directory and lvm.conf: its leases live in the volume group's `leases` LV.

A first smoke test of the pool contract on LVM (the full scenario suite lives beside the NFS one): both hosts
attach and see each other's changes, double activation and chain changes of a VDI active on the other host are
refused with Activated_on_another_host naming it, and SR.destroy is refused while the other host is attached."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from tests.lvm.factory import lvm_available, remove_lvm_state
from tests.pool.conftest import SimHost
from tests.pool.hostproc import HostProcess, RemoteError

MiB = 1 << 20
GiB = 1 << 30

PRELUDE = """
from smapi.core.driver import load_driver
driver = load_driver("smapi.drivers.lvm:LvmDriver")
dispatcher = driver.dispatcher("storage")
def call(verb, **args):
    return dispatcher.call(verb, {"dbg": "tests/pool", **args})
def write(sr, vdi, offset, data):
    h = driver.open_vdi(sr, vdi, writable=True)
    try:
        h.write(offset, data.encode())
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


class LvmHost:
    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.main: HostProcess = host.process()
        self.main.run(PRELUDE)
        host.cleanups.append(lambda: _kill_servers_of(host.run_dir))

    def call(self, verb: str, **args: Any) -> Any:
        return self.main.run("result = call(verb, **args)", verb=verb, args=args)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Any]:
    why = lvm_available()
    if why:
        pytest.skip(why)
    from smapi.drivers.lvm.loopdev import SparseLoop

    lp = SparseLoop(str(tmp_path / "pv.img"), 2 * GiB)
    yield lp
    remove_lvm_state([lp], str(tmp_path / "cleanup-lvm-etc"))
    lp.close()


def _kill_servers_of(run_dir: str) -> None:
    """Datapath servers a failed test left running for this host (they keep the loop device open)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if (argv.startswith(b"nbdkit") or b"/nbdkit\0" in argv) and run_dir.encode() in argv:
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)


def _hosts(make_hosts, tmp_path: Path, n: int) -> List[LvmHost]:  # type: ignore[no-untyped-def]
    out = []
    for host in make_hosts(n, SMAPI_GC="sync"):
        # each host its own lock directory and lvm.conf, as separate machines would have
        host.env["SMAPI_LVM_LOCK_DIR"] = os.path.join(host.run_dir, "lvm-locks")
        host.env["SMAPI_LVM_SYSTEM_DIR"] = os.path.join(host.run_dir, "lvm-etc")
        out.append(LvmHost(host))
    return out


def _refused_as_active_on(host_id: int, call: Any) -> None:
    with pytest.raises(RemoteError) as refused:
        call()
    assert refused.value.wire == "Activated_on_another_host", refused.value
    assert f"host id {host_id}" in str(refused.value)


def test_two_hosts_on_a_shared_lvm_sr(loop, make_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = _hosts(make_hosts, tmp_path, 2)
    sr = str(uuid.uuid4())
    dc: Dict[str, str] = {"device": loop.device, "provisioning": "thin", "shared": "true"}
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    # the other host is not told the SR is shared: the volume group says so
    b.call("SR.attach", sr=sr, device_config={"device": loop.device})
    ids = a.main.run("from smapi.sr.sanlock import client; result = sorted(client.live_hosts(ls))", ls="smapi-" + sr)
    assert ids == [1, 2]

    vdi = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": 8 * MiB, "name_label": "disk"})["vdi"]
    b.main.run("write(sr, vdi, 0, 'from b' * 10)", sr=sr, vdi=vdi)
    assert {v["vdi"] for v in b.call("SR.scan", sr=sr)} == {vdi}
    snap = b.call("VDI.snapshot", sr=sr, vdi_info=b.call("VDI.stat", sr=sr, vdi=vdi))["vdi"]
    assert {v["vdi"] for v in a.call("SR.scan", sr=sr)} == {vdi, snap}
    # the leases LV is the SR's own, never a volume (nor an orphan to collect)
    lvs = a.main.run("e = driver.engine_for(sr); result = e.substrate.list_volumes()", sr=sr)
    assert "leases" not in lvs and "MGT" not in lvs

    # A activates the VDI read-write (thin: its leaf is inflated under the SR lease first)
    a.call("VDI.attach", sr=sr, dp="vm-a", vdi=vdi, read_write=True)
    a.call("VDI.activate", sr=sr, dp="vm-a", vdi=vdi)
    b.call("VDI.attach", sr=sr, dp="vm-b", vdi=vdi, read_write=True)
    _refused_as_active_on(1, lambda: b.call("VDI.activate", sr=sr, dp="vm-b", vdi=vdi))
    b.call("VDI.detach", sr=sr, dp="vm-b", vdi=vdi)
    info = b.call("VDI.stat", sr=sr, vdi=vdi)
    _refused_as_active_on(1, lambda: b.call("VDI.snapshot", sr=sr, vdi_info=info))
    _refused_as_active_on(1, lambda: b.call("VDI.resize", sr=sr, vdi=vdi, new_size=16 * MiB))
    _refused_as_active_on(1, lambda: b.call("VDI.destroy", sr=sr, vdi=vdi))
    # B's collection after removing the snapshot skips the VDI active on A, and B's journal replay does not
    # deflate A's inflated leaf
    b.call("VDI.destroy", sr=sr, vdi=snap)
    b.call("SR.scan", sr=sr)

    # SR.destroy is refused while the other host is attached, naming it
    with pytest.raises(RemoteError) as refused:
        b.call("SR.destroy", sr=sr)
    assert "other live hosts" in str(refused.value) and "host id 1" in str(refused.value), refused.value

    a.call("VDI.deactivate", sr=sr, dp="vm-a", vdi=vdi)
    a.call("VDI.detach", sr=sr, dp="vm-a", vdi=vdi)
    assert b.main.run("result = read(sr, vdi, 0, 60)", sr=sr, vdi=vdi) == "from b" * 10
    b.call("VDI.resize", sr=sr, vdi=vdi, new_size=16 * MiB)  # free again on B now that A let go
    a.call("SR.detach", sr=sr)
    b.call("SR.destroy", sr=sr)
