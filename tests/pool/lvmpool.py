"""Helpers of the LVM and iSCSI pool tests: simulated hosts that share one block device (a loop device, or one
tgtd LUN through each host's own userspace initiator session), each with its own sanlock daemon, run directory,
lvm.conf, driver lock files and lvm2 lock directory.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from smapi.drivers.lvm import loopdev
from smapi.drivers.lvm.loopdev import SparseLoop
from smapi.drivers.lvm.lvmcli import Lvm
from tests.lvm.factory import host_lvm_dirs, lvm_available, remove_lvm_state
from tests.pool.conftest import WHY as SANLOCK_WHY
from tests.pool.conftest import HostSet, SimHost
from tests.pool.hostproc import RemoteError
from tests.pool.poolhost import PoolHost

MiB = 1 << 20
GiB = 1 << 30
LVM_DRIVER = "smapi.drivers.lvm:LvmDriver"
ISCSI_DRIVER = "smapi.drivers.iscsi:IscsiDriver"
#: the VG's image LVs (VHD and raw VDIs, base copies); MGT and lease LVs are the SR's own
IMAGE_PREFIXES = ("VHD-", "LV-")


class LvmHost(PoolHost):
    """A simulated host driving `driver_spec` (LVM, or iSCSI which is LVM on a LUN) with its own lvm state."""

    def __init__(self, host: SimHost, driver_spec: str = LVM_DRIVER) -> None:
        host.env.update(host_lvm_dirs(host.run_dir, own_lvm_locks=True))  # before its first process starts
        super().__init__(host, driver_spec)


@dataclass
class Pool:
    """Two hosts with one SR attached on both (A attached first)."""

    a: LvmHost
    b: LvmHost
    sr: str
    device_config: Dict[str, str]
    #: A's loop device on the shared file (LVM only): the test process reads the VG's LVs on it with lvs
    device: str = ""
    conf_dir: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def image_lvs(self) -> List[str]:
        """The VG's VHD-*/LV-* LVs, as lvs on the device reports them."""
        rows = Lvm([self.device], self.conf_dir).lvs(["lv_name", "vg_name"])
        return sorted(r["lv_name"] for r in rows
                      if r.get("vg_name") == "VG_XenStorage-" + self.sr and r["lv_name"].startswith(IMAGE_PREFIXES))

    def record_volumes(self, host: Optional[LvmHost] = None) -> List[str]:
        """Every volume the SR document records (VDIs and hidden base copies), read by `host` (default B)."""
        return sorted((host or self.b).main.run(
            "result = [r.volume for r in driver.engine_for(sr).load().vdis.values()]", sr=self.sr))


def lvm_unavailable() -> str:
    return SANLOCK_WHY or lvm_available()


@contextlib.contextmanager
def lvm_pool(root: Path, *, attach: bool = True) -> Iterator[Pool]:
    """A 4 GiB sparse file, the shared LUN: each host reaches it through its own loop device, so each has its own
    block-device page cache as real hosts on a SAN do (one loop device for both would share one cache and hide
    stale reads). A pool SR (`shared=true`) is created by A and, with `attach`, attached on A then B.

    Afterwards (unless the test marked it gone) B detaches and A destroys the SR, which must then succeed;
    hosts, LVM state and the loop devices are cleaned up whatever happened."""
    why = lvm_unavailable()
    if why:
        pytest.skip(why)
    hosts = HostSet(root)
    loop = SparseLoop(str(root / "lun.img"), 4 * GiB)
    conf_dir = str(root / "test-lvm-etc")
    b_device = ""
    try:
        b_device = loopdev.attach(loop.path)
        a, b = (LvmHost(h) for h in hosts(2, SMAPI_GC="sync"))
        sr = str(uuid.uuid4())
        dc = {"device": loop.device, "shared": "true"}
        a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
        pool = Pool(a, b, sr, dc, loop.device, conf_dir, {"b_config": {"device": b_device}})
        if attach:
            a.call("SR.attach", sr=sr, device_config=dc)
            b.call("SR.attach", sr=sr, device_config=pool.extra["b_config"])  # "shared" is in the VG
        yield pool
        if not pool.extra.get("gone"):
            b.call("SR.detach", sr=sr)
            a.call("SR.destroy", sr=sr)  # B has left: A may destroy it now
    finally:
        try:
            hosts.close()
        finally:
            remove_lvm_state([loop], conf_dir)
            if b_device:
                loopdev.detach(b_device)
            loop.close()


# -- checks shared by the LVM and iSCSI scenarios ------------------------------------------------------------------
def refused_as_active_on(holder: PoolHost, sr: str, call: Callable[[], Any]) -> None:
    """`call` fails with Activated_on_another_host naming `holder`."""
    expected = f"host id {holder.host_id(sr)}"
    with pytest.raises(RemoteError) as refused:
        call()
    assert refused.value.wire == "Activated_on_another_host", refused.value
    assert expected in str(refused.value), refused.value


def refused_in_use_by(holder: PoolHost, sr: str, call: Callable[[], Any]) -> None:
    """`call` (an SR.destroy) fails with SRInUse naming `holder`."""
    expected = f"host id {holder.host_id(sr)}"
    with pytest.raises(RemoteError) as refused:
        call()
    text = str(refused.value)
    assert "SR_BACKEND_FAILURE_16" in text or "SRInUse" in text, refused.value  # classic SRInUse is code 16
    assert expected in text, refused.value


def activate(host: PoolHost, sr: str, vdi: str, dp: str, rw: bool) -> Dict[str, Any]:
    info = host.call("VDI.attach", sr=sr, dp=dp, vdi=vdi, read_write=rw)
    host.call("VDI.activate", sr=sr, dp=dp, vdi=vdi)
    return info


def release(host: PoolHost, sr: str, vdi: str, dp: str) -> None:
    host.call("VDI.deactivate", sr=sr, dp=dp, vdi=vdi)
    host.call("VDI.detach", sr=sr, dp=dp, vdi=vdi)


def qemu_io(uri: str, *commands: str) -> None:
    """Run qemu-io commands on the NBD export `uri`; a failed write, flush or pattern read fails the test."""
    args = ["qemu-io", "-f", "raw"]
    for c in commands:
        args += ["-c", c]
    res = subprocess.run(args + [uri], capture_output=True, timeout=60)
    assert res.returncode == 0 and b"fail" not in res.stdout.lower(), (res.stdout[-600:], res.stderr[-600:])


def tool_missing(*tools: str) -> Optional[str]:
    missing = [t for t in tools if shutil.which(t) is None]
    return f"{', '.join(missing)} not installed" if missing else None

