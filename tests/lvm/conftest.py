"""Fixtures of the LVM driver tests: real lvm2 on loop devices over sparse files, all in the test's directory."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from smapi.drivers.lvm.loopdev import SparseLoop
from smapi.drivers.lvm.lvmcli import Lvm
from tests.lvm.factory import lvm_available, remove_lvm_state
from tests.lvm.helpers import LvmSR

_WHY = lvm_available()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(autouse=True)
def lvm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Host-local state (run dir, lvm.conf, locks) inside the test's directory. The driver's lock files follow the
    run directory (no SMAPI_LVM_LOCK_DIR), so a test that switches to a fresh run directory is a host of its own."""
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SMAPI_LVM_SYSTEM_DIR", str(tmp_path / "lvm-etc"))
    monkeypatch.delenv("SMAPI_LVM_LOCK_DIR", raising=False)
    monkeypatch.setenv("SMAPI_GC", "sync")
    return tmp_path


@pytest.fixture
def make_loop(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """make_loop(size) -> a loop device over a new sparse file; LVM state and devices removed afterwards."""
    loops: List[SparseLoop] = []

    def make(size: int = GiB) -> str:
        loops.append(SparseLoop(str(tmp_path / f"pv{len(loops)}.img"), size))
        return loops[-1].device

    yield make
    remove_lvm_state(loops, str(tmp_path / "lvm-etc"))
    errors = []
    for lp in loops:
        try:
            lp.close()  # raises when something still holds the device (a leaked descriptor or server)
        except Exception as e:  # noqa: BLE001 - close the others, then report
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def loop(make_loop: Callable[[int], str]) -> str:
    return make_loop(GiB)


@pytest.fixture
def lvm(loop: str, tmp_path: Path) -> Lvm:
    return Lvm([loop], str(tmp_path / "lvm-etc"))


@pytest.fixture
def vg_name() -> str:
    """Per-test names: loop devices and lvm's lock directory are machine-global."""
    return f"VG_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def vg(lvm: Lvm, loop: str, vg_name: str) -> str:
    lvm.run("pvcreate", "-y", loop)
    lvm.run("vgcreate", vg_name, loop)
    return vg_name


def make_sr(devices: List[str], provisioning: str = "thick", **extra: str) -> LvmSR:
    client = LvmSR({"device": ",".join(devices), "provisioning": provisioning, **extra})
    client.create()
    client.attach()
    return client


@pytest.fixture
def thick_sr(loop: str) -> LvmSR:
    return make_sr([loop], "thick")


@pytest.fixture
def thin_sr(loop: str) -> LvmSR:
    return make_sr([loop], "thin")
