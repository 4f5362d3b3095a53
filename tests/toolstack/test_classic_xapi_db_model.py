"""Property test: any sequence of classic verbs under xapi leaves xapi's VDI table equal to the SR.

The model: xapi's table equals the SR after every verb made with xapi's session, unless some verb ran without a
session (xapi not told) since the last verb that re-reads the whole SR (snapshot, clone, compose, sr_scan); from
that verb on it is equal again. xapi is the stand-in of `tests/toolstack/xapi_standin.py` (built from seed 003).
"""

from __future__ import annotations

import itertools
import os
import xmlrpc.client
from typing import Any, Dict, List, Tuple

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smapi.cli.main import cli
from tests.sr.drivers import file_sr_factory
from tests.toolstack.test_classic_xapi_db import XenAPI, assert_in_sync, sm_exec, storage
from tests.toolstack.xapi_standin import XapiStandIn

MiB = 1024 * 1024
#: verbs after which xapi's records of the whole SR are re-read from the storage
FULL_SYNC = {"snapshot", "clone", "compose", "scan"}

ops = st.lists(st.one_of(
    st.tuples(st.just("create"), st.integers(1, 4)),
    st.tuples(st.sampled_from(["snapshot", "clone", "delete", "quiet_delete"]), st.integers(0, 7)),
    st.tuples(st.just("resize"), st.integers(0, 7), st.integers(1, 2)),
    st.tuples(st.just("compose"), st.integers(0, 7), st.integers(0, 7)),
    st.tuples(st.sampled_from(["scan", "quiet_create"])),
), min_size=1, max_size=7)

_examples = itertools.count()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    target = tmp_path_factory.mktemp("sm")
    result = CliRunner().invoke(cli, ["classic-install", str(target), "--only", "FileSR"])
    assert result.exit_code == 0, result.output
    return str(target / "FileSR")


def _apply(host: Dict[str, Any], vdis: List[Dict[str, str]], op: Tuple[Any, ...]) -> bool:
    """Run one verb; False when it was not run (nothing to act on). A refused verb raises the fault."""
    def ref(i: int) -> Dict[str, str]:
        v = vdis[i % len(vdis)]
        return {"vdi_uuid": v["uuid"], "vdi_location": v["location"]}

    kind = op[0]
    if kind in ("create", "quiet_create"):
        size = (op[1] if kind == "create" else 1) * MiB
        vdis.append(sm_exec(host, "vdi_create", [str(size), "d", "", "", "false", "", "", "false"],
                            session=kind == "create"))
    elif not vdis:
        return False
    elif kind in ("snapshot", "clone"):
        vdis.append(sm_exec(host, f"vdi_{kind}", [{}], **ref(op[1])))
    elif kind in ("delete", "quiet_delete"):
        target = ref(op[1])
        sm_exec(host, "vdi_delete", session=kind == "delete", **target)
        vdis[:] = [v for v in vdis if v["uuid"] != target["vdi_uuid"]]
    elif kind == "resize":
        current = storage(host)[ref(op[1])["vdi_location"]]["virtual_size"]
        sm_exec(host, "vdi_resize", [str(current + op[2] * MiB)], **ref(op[1]))
    elif kind == "compose":
        parent, child = ref(op[1]), ref(op[2])
        if parent["vdi_uuid"] == child["vdi_uuid"]:
            return False
        sm_exec(host, "vdi_compose", [host["xapi"].ref_of(parent["vdi_uuid"])], **child)
    elif kind == "scan":
        sm_exec(host, "sr_scan")
    return True


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
def test_any_classic_sequence_keeps_xapi_equal_to_the_sr(installed, tmp_path, sequence) -> None:
    n = next(_examples)
    sut = file_sr_factory(tmp_path / f"ex{n}")
    sr = f"6b1c2d3e-4f50-4a6b-8c7d-{n:012d}"
    with XapiStandIn() as xapi:
        session = XenAPI.Session(xapi.url, transport=XenAPI.UDSTransport())
        session.slave_local_login_with_password("root", "")  # as a host-local tool logs in
        host = {"exe": installed, "env": {**os.environ, **sut.env, "SMAPI_XAPI_SOCKET": xapi.socket},
                "dc": {"SRmaster": "true", **sut.device_config}, "xapi": xapi, "session": session._session,
                "sr_ref": xapi.sr_introduce(sr), "sr_uuid": sr}
        try:
            sm_exec(host, "sr_create", ["0"])
            sm_exec(host, "sr_attach")
            vdis: List[Dict[str, str]] = []
            told = True  # xapi has been told of every change since the last full re-read
            for op in sequence:
                try:
                    ran = _apply(host, vdis, op)
                except xmlrpc.client.Fault:
                    ran = False  # refused by the storage (e.g. compose of related VDIs): xapi must still be right
                if ran and op[0].startswith("quiet"):
                    told = False
                elif ran and op[0] in FULL_SYNC:
                    told = True
                if told:
                    assert_in_sync(host)
        finally:
            sut.cleanup()
