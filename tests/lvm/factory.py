"""LVM SRs under test: a volume group on a loop device over a sparse file in the test's directory.

`lvm_sr_factory` (thick) and `lvm_thin_sr_factory` (thin) follow the conformance-suite contract of
`tests/sr/drivers.py`: they return an `SRUnderTest`, and `cleanup()` removes the volume group, detaches the
loop device and deletes the file, whatever state the test left the SR in.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Dict, List, Sequence

from smapi.drivers.lvm.loopdev import SparseLoop
from smapi.drivers.lvm.lvmcli import Lvm

if TYPE_CHECKING:  # imported where used: tests.sr.drivers imports this module to register the LVM factories
    from tests.sr.drivers import SRUnderTest

GiB = 1 << 30
#: sparse: costs only what the tests write
DEFAULT_PV_SIZE = 4 * GiB


def lvm_available() -> str:
    """Why LVM tests cannot run here ('' when they can)."""
    if os.geteuid() != 0:
        return "LVM tests need root (loop devices, lvm2)"
    for tool in ("lvm", "losetup"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install lvm2 util-linux)"
    if not os.path.exists("/dev/loop-control"):
        return "no loop device support (/dev/loop-control)"
    return ""


def host_lvm_dirs(run_dir: str, *, own_lvm_locks: bool = False) -> Dict[str, str]:
    """The LVM driver's host-local directories for a host whose run directory is ``run_dir`` (where the driver puts
    them by default), as environment variables.

    ``own_lvm_locks``: lvm2's own flocks (``locking_dir``, /run/lock/lvm) move under ``run_dir`` too, through an
    lvmlocal.conf beside the driver's generated lvm.conf. Simulated pool hosts need this: on one machine they would
    otherwise serialise each other's lvm commands through one lock file, which real hosts on shared storage never
    do, and races between their VG metadata updates would go unseen."""
    dirs = {"SMAPI_LVM_SYSTEM_DIR": os.path.join(run_dir, "lvm", "etc"),
            "SMAPI_LVM_LOCK_DIR": os.path.join(run_dir, "lvm", "locks")}
    if own_lvm_locks:
        etc = dirs["SMAPI_LVM_SYSTEM_DIR"]
        os.makedirs(etc, exist_ok=True)
        with open(os.path.join(etc, "lvmlocal.conf"), "w") as f:
            f.write(f'global {{\n    locking_dir = "{os.path.join(run_dir, "lvm", "lvm2-locks")}"\n}}\n')
    return dirs


def remove_lvm_state(loops: Sequence[SparseLoop], config_dir: str) -> None:
    """Remove every volume group and PV label on the devices of ``loops`` that are still attached to their own files
    (best effort, never raises).

    Nothing at all is run for an empty list: lvm without ``--devices`` would scan the whole machine, and this
    ``vgremove -ff`` then destroyed the volume groups of tests running in other workers (a fixture that made no
    loop device called it with none)."""
    devices = [lp.device for lp in loops if lp.is_ours()]
    if not devices:
        return
    try:
        lvm = Lvm(devices, config_dir)
        vgs = {r["vg_name"] for r in lvm.pvs(["pv_name", "vg_name"]) if r.get("vg_name")}
        for vg in sorted(vgs):
            lvm.run("vgremove", "-ff", "-y", vg)
        pvs = [r["pv_name"] for r in lvm.pvs(["pv_name"])]
        if pvs:
            lvm.run("pvremove", "-ff", "-y", *pvs)
    except Exception:  # noqa: BLE001 - cleanup must go on to detach the loop devices
        pass


def _factory(tmp_path: str | os.PathLike[str], provisioning: str, *, pv_size: int = DEFAULT_PV_SIZE,
             pv_count: int = 1) -> SRUnderTest:
    from tests.sr.drivers import SRUnderTest

    root = os.fspath(tmp_path)
    os.makedirs(root, exist_ok=True)
    run_dir = os.path.join(root, "run")
    os.makedirs(run_dir, exist_ok=True)
    loops: List[SparseLoop] = []
    try:
        for i in range(pv_count):
            loops.append(SparseLoop(os.path.join(root, f"pv{i}.img"), pv_size))
    except Exception:
        for lp in loops:
            lp.close()
        raise
    devices = [lp.device for lp in loops]
    # No SMAPI_LVM_SYSTEM_DIR / SMAPI_LVM_LOCK_DIR: the driver keeps lvm.conf and its lock files under the run
    # directory then, so a test that simulates another host with a fresh SMAPI_RUN_DIR (the conformance suite's
    # "fresh host" tests) gets that host's own locks. A shared lock directory hid cross-host races (issue 14).
    env: Dict[str, str] = {"SMAPI_RUN_DIR": run_dir, "SMAPI_GC": "sync"}
    sut = SRUnderTest(
        driver_spec="smapi.drivers.lvm:LvmDriver",
        device_config={"device": ",".join(devices), "provisioning": provisioning},
        env=env,
        name=f"lvm-{provisioning}",
    )

    def cleanup() -> None:
        remove_lvm_state(loops, host_lvm_dirs(run_dir)["SMAPI_LVM_SYSTEM_DIR"])
        errors = []
        for lp in loops:
            try:
                lp.close()
            except Exception as e:  # noqa: BLE001 - close the others, then report
                errors.append(e)
        if errors:
            raise errors[0]

    sut._cleanups.append(cleanup)
    return sut


def lvm_sr_factory(tmp_path: str | os.PathLike[str]) -> SRUnderTest:
    """A thick-provisioned LVM SR on one 4 GiB sparse loop device."""
    return _factory(tmp_path, "thick")


def lvm_thin_sr_factory(tmp_path: str | os.PathLike[str]) -> SRUnderTest:
    """A thin-provisioned LVM SR on one 4 GiB sparse loop device."""
    return _factory(tmp_path, "thin")
