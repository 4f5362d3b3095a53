"""The target stops and comes back while an SR is attached: typed errors during the outage, then full service with
every byte written before it intact. A private tgtd: stopping the shared one would break other tests."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error
from smapi.sr.runstate import RunState
from tests.iscsi.conftest import GiB, IscsiClient, MiB
from tests.iscsi.factory import leftovers, release_sessions
from tests.iscsi.tgt import TgtServer

BOUND = 5.0


@pytest.fixture
def private_tgt(tmp_path: Path) -> Iterator[TgtServer]:
    server = TgtServer(str(tmp_path / "tgt")).start()
    yield server
    for t in list(server.targets.values()):
        release_sessions(t.iqn)
    server.stop()


def _typed_during_outage(fn: Callable[[], Any]) -> None:
    start = time.monotonic()
    with pytest.raises(Backend_error) as err:
        fn()
    assert err.value.classic_code == CLASSIC_CODES["ISCSITarget"][0], err.value.message()
    assert "resumes" in err.value.message()
    assert time.monotonic() - start < BOUND


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_target_restart_while_attached(private_tgt: TgtServer) -> None:
    t = private_tgt.add_target("outage", [(1, GiB)], chap=("outuser", "OutageSecret12"))
    sr = IscsiClient({"target": private_tgt.portal, "targetIQN": t.iqn, "LUNid": "1", "chapuser": "outuser",
                      "chappassword": "OutageSecret12"})
    sr.create()
    sr.attach()
    vdi = sr.vdi(32 * MiB)
    before = os.urandom(4 * MiB)
    sr.write(vdi, 7 * MiB, before)
    snap = sr.v("VDI.snapshot", vdi_info=sr.v("VDI.stat", vdi=vdi))["vdi"]
    digests = {vdi: _sha(sr.read(vdi, 0, 32 * MiB)), snap: _sha(sr.read(snap, 0, 32 * MiB))}

    private_tgt.stop()
    _typed_during_outage(lambda: sr.v("SR.scan"))
    _typed_during_outage(lambda: sr.v("VDI.stat", vdi=vdi))
    _typed_during_outage(lambda: sr.vdi(MiB))
    _typed_during_outage(lambda: sr.read(vdi, 0, MiB))
    _typed_during_outage(lambda: sr.write(vdi, 0, b"x" * 512))
    _typed_during_outage(sr.detach)
    assert RunState().attached(sr.sr) is not None  # a detach that could not flush left the SR attached

    private_tgt.restart()
    assert {v: _sha(sr.read(v, 0, 32 * MiB)) for v in digests} == digests
    sr.write(vdi, 0, b"after the outage" * 64)
    assert sr.read(vdi, 0, 16) == b"after the outage"
    assert {v["vdi"] for v in sr.v("SR.scan")} == {vdi, snap}
    sr.detach()
    assert not leftovers(t.iqn, os.environ["SMAPI_RUN_DIR"])
    sr.attach()  # and on a fresh session the data is there too
    assert _sha(sr.read(snap, 0, 32 * MiB)) == digests[snap]
    sr.detach()
