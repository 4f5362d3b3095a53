"""Fixtures of the iSCSI driver tests: a real tgtd on 127.0.0.1, the driver through the dispatcher, leak checks."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from tests.iscsi.factory import iscsi_unavailable, leftovers, release_sessions, shared_server, stop_shared_server
from tests.iscsi.tgt import Target, TgtServer
from tests.sr.client import DriverClient

WHY = iscsi_unavailable()
if WHY:
    pytest.skip(WHY, allow_module_level=True)

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(scope="session", autouse=True)
def _server_stops_at_the_end() -> Iterator[None]:
    yield
    stop_shared_server()


@pytest.fixture(autouse=True)
def iscsi_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Host-local state (run dir, lvm.conf, locks) inside the test's directory; the userspace initiator."""
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SMAPI_LVM_SYSTEM_DIR", str(tmp_path / "lvm-etc"))
    monkeypatch.delenv("SMAPI_LVM_LOCK_DIR", raising=False)  # lock files follow the run directory: per host
    monkeypatch.setenv("SMAPI_GC", "sync")
    monkeypatch.setenv("SMAPI_ISCSI_CLIENT", "userspace")
    # every iSCSI SR is a pool SR: its leases need a sanlock daemon (this test process's, one host)
    from tests.nfs.factory import session_sanlock_env

    for key, value in session_sanlock_env().items():
        monkeypatch.setenv(key, value)
    return tmp_path


@pytest.fixture
def tgt() -> TgtServer:
    return shared_server()


class Targets:
    """Targets made for one test on some tgtd; removed (with every session to them) afterwards."""

    def __init__(self, server: TgtServer, root: str) -> None:
        self.server, self.root = server, root
        self.made: List[Target] = []

    def add(self, luns: Any = ((1, GiB),), **kw: Any) -> Target:
        t = self.server.add_target(f"t-{uuid.uuid4().hex[:10]}", list(luns), **kw)
        self.made.append(t)
        return t

    def config(self, t: Target, **extra: str) -> Dict[str, str]:
        return {"target": "127.0.0.1", "port": str(self.server.port), "targetIQN": t.iqn, **extra}

    def close(self) -> List[str]:
        left: List[str] = []
        for t in self.made:
            left += leftovers(t.iqn, self.root)
            release_sessions(t.iqn, self.root)
            self.server.remove_target(t)
        return left


@pytest.fixture
def targets(tgt: TgtServer, tmp_path: Path) -> Iterator[Targets]:
    made = Targets(tgt, str(tmp_path))
    yield made
    left = made.close()
    assert not left, f"the test left initiator state behind: {left}"


class IscsiClient(DriverClient):
    """One iSCSI SR driven through the dispatcher, as every transport drives it."""

    def __init__(self, device_config: Dict[str, str], sr: str = "") -> None:
        super().__init__("iscsi", device_config, sr)

    def probe(self, **config: str) -> Any:
        return self.call("SR.probe", device_config=config, sm_config={})

    def vdi(self, size: int) -> str:
        return self.v("VDI.create", vdi_info={"virtual_size": size})["vdi"]

    def session_dir(self) -> str:
        return os.path.join(os.environ["SMAPI_RUN_DIR"], "iscsi", self.sr)
