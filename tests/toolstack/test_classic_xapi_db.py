"""Classic executables keep xapi's database right, as sm's drivers do.

xapi's database is played by `tests/toolstack/xapi_standin.py`, a stand-in built from seed 003 (the XenAPI wire
protocol and errors) and sm's `VDI.db_introduce`/`db_forget` calls: an XML-RPC server on a Unix socket that the
real XenAPI client reaches, with an in-memory VDI table. FileSR, installed by `smapi classic-install`, runs as
xapi's sm_exec runs it, with the session xapi would pass; after every verb the VDI table xapi holds for the SR
must equal what the SR holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xmlrpc.client
from typing import Any, Dict, Iterator

import pytest
from click.testing import CliRunner

from smapi.cli.main import cli
from tests.sr.drivers import file_sr_factory
from tests.toolstack.xapi_standin import XapiStandIn

XenAPI = pytest.importorskip("XenAPI", reason="the XenAPI client (PyPI XenAPI) is an install requirement")

SR = "6b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"

STORAGE_SCAN = """
import json, sys
from smapi.core.driver import load_driver
d = load_driver("smapi.drivers.file:FileDriver").dispatcher("storage")
print(json.dumps(d.call("SR.scan", {"dbg": "test", "sr": sys.argv[1]})))
"""


@pytest.fixture
def host(tmp_path) -> Iterator[Dict[str, Any]]:
    target = tmp_path / "sm"
    result = CliRunner().invoke(cli, ["classic-install", str(target), "--only", "FileSR"])
    assert result.exit_code == 0, result.output
    sut = file_sr_factory(tmp_path)
    with XapiStandIn() as xapi:
        session = XenAPI.Session(xapi.url, transport=XenAPI.UDSTransport())
        session.xenapi.login_with_password("root", "", "1.0", "smapi-test")
        env = {**os.environ, **sut.env, "SMAPI_XAPI_SOCKET": xapi.socket}
        try:
            yield {"exe": str(target / "FileSR"), "env": env, "dc": {"SRmaster": "true", **sut.device_config},
                   "xapi": xapi, "session": session._session, "sr_ref": xapi.sr_introduce(SR)}
        finally:
            sut.cleanup()


def sm_exec(host: Dict[str, Any], command: str, args: Any = (), session: bool = True, **keys: Any) -> Any:
    struct = {"host_ref": "OpaqueRef:h", "session_ref": host["session"] if session else "OpaqueRef:NULL",
              "command": command, "args": list(args), "device_config": host["dc"], "sr_uuid": host.get("sr_uuid", SR),
              "sr_ref": host["sr_ref"], **keys}
    p = subprocess.run([host["exe"], xmlrpc.client.dumps((struct,), command)], capture_output=True, text=True,
                       timeout=60, env=host["env"], cwd="/")
    assert p.returncode == 0, p.stderr
    return xmlrpc.client.loads(p.stdout)[0][0]


def storage(host: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    p = subprocess.run([sys.executable, "-c", STORAGE_SCAN, host.get("sr_uuid", SR)], capture_output=True,
                       text=True, timeout=60, env=host["env"], check=True)
    return {info["vdi"]: info for info in json.loads(p.stdout)}


def assert_in_sync(host: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """xapi's VDI table for the SR equals the SR: same VDIs, and the fields the storage owns agree."""
    on_sr = storage(host)
    in_xapi = host["xapi"].vdis_of(host["sr_ref"])
    assert sorted(in_xapi) == sorted(on_sr)
    for location, info in on_sr.items():
        record = in_xapi[location]
        assert record["uuid"] == location and record["managed"] is True
        assert int(record["virtual_size"]) == info["virtual_size"]
        assert int(record["physical_utilisation"]) == info["physical_utilisation"]
        assert record["read_only"] == info["read_only"] and record["is_a_snapshot"] == info["is_a_snapshot"]
        assert record["sm_config"] == info["sm_config"]
    return in_xapi


def test_classic_flow_keeps_the_vdi_table_equal_to_the_sr(host) -> None:
    xapi = host["xapi"]
    assert sm_exec(host, "sr_create", ["0"]) is None
    assert sm_exec(host, "sr_attach") is None
    assert assert_in_sync(host) == {}

    made = sm_exec(host, "vdi_create", ["4194304", "disk", "the disk", "", "false", "", "", "false"],
                   vdi_sm_config={"type": "vhd"})
    table = assert_in_sync(host)
    assert table[made["location"]]["name_label"] == "disk"
    assert table[made["location"]]["name_description"] == "the disk"
    assert table[made["location"]]["other_config"] == {}
    disk = {"vdi_uuid": made["uuid"], "vdi_location": made["location"], "vdi_ref": xapi.ref_of(made["uuid"])}

    snap = sm_exec(host, "vdi_snapshot", [{}], **disk)
    table = assert_in_sync(host)
    assert table[snap["location"]]["is_a_snapshot"] is True
    assert table[snap["location"]]["snapshot_of"] == disk["vdi_ref"]  # a ref, as xapi keeps it

    clone = sm_exec(host, "vdi_clone", [{}], vdi_uuid=snap["uuid"], vdi_location=snap["location"])
    table = assert_in_sync(host)
    assert table[clone["location"]]["is_a_snapshot"] is False

    assert sm_exec(host, "vdi_resize", ["8388608"], **disk)["uuid"] == made["uuid"]
    assert int(assert_in_sync(host)[made["location"]]["virtual_size"]) == 8388608

    # xapi passes vdi_compose's vdi1 as an OpaqueRef; the executable resolves it through XenAPI.
    assert sm_exec(host, "vdi_compose", [xapi.ref_of(clone["uuid"])], **disk) is None
    assert_in_sync(host)

    assert sm_exec(host, "vdi_delete", vdi_uuid=clone["uuid"], vdi_location=clone["location"]) is None
    assert clone["location"] not in assert_in_sync(host)


def test_scan_introduces_and_forgets_what_changed_behind_xapis_back(host) -> None:
    xapi = host["xapi"]
    sm_exec(host, "sr_create", ["0"])
    sm_exec(host, "sr_attach")
    kept = sm_exec(host, "vdi_create", ["1048576", "kept", "", "", "false", "", "", "false"])
    gone = sm_exec(host, "vdi_create", ["1048576", "gone", "", "", "false", "", "", "false"])
    calls_before = len(xapi.calls)
    # Without a session (any caller but xapi) nothing is written to xapi, and xapi is not contacted at all.
    quiet = sm_exec(host, "vdi_create", ["2097152", "quiet", "", "", "false", "", "", "false"], session=False)
    assert sm_exec(host, "vdi_delete", session=False, vdi_uuid=gone["uuid"], vdi_location=gone["location"]) is None
    assert len(xapi.calls) == calls_before
    table = xapi.vdis_of(host["sr_ref"])
    assert quiet["location"] not in table and gone["location"] in table

    assert sm_exec(host, "sr_scan") is None
    table = assert_in_sync(host)
    assert table[quiet["location"]]["name_label"] == "quiet"  # the name the SR keeps
    assert table[kept["location"]]["name_label"] == "kept"

    # xapi's own edits to fields it owns survive a scan.
    with xapi.lock:
        xapi.vdis[xapi.ref_of(kept["uuid"])]["name_label"] = "renamed in xapi"
        xapi.vdis[xapi.ref_of(kept["uuid"])]["other_config"] = {"folder": "x"}
    sm_exec(host, "sr_scan")
    record = assert_in_sync(host)[kept["location"]]
    assert record["name_label"] == "renamed in xapi" and record["other_config"] == {"folder": "x"}


def test_sr_delete_checks_xapis_managed_vdis(host) -> None:
    sm_exec(host, "sr_create", ["0"])
    sm_exec(host, "sr_attach")
    made = sm_exec(host, "vdi_create", ["1048576", "d", "", "", "false", "", "", "false"])
    with pytest.raises(xmlrpc.client.Fault) as on_sr:
        sm_exec(host, "sr_delete")
    assert on_sr.value.faultCode == 39
    # The SR is empty but xapi still has a managed record on it (deleted without a session): refused too.
    sm_exec(host, "vdi_delete", session=False, vdi_uuid=made["uuid"], vdi_location=made["location"])
    with pytest.raises(xmlrpc.client.Fault) as in_xapi:
        sm_exec(host, "sr_delete")
    assert in_xapi.value.faultCode == 39 and made["uuid"] in in_xapi.value.faultString
    sm_exec(host, "sr_scan")
    assert assert_in_sync(host) == {}
    assert sm_exec(host, "sr_delete") is None


def test_a_session_xapi_does_not_know_is_a_fault_not_a_silent_success(host) -> None:
    sm_exec(host, "sr_create", ["0"])
    sm_exec(host, "sr_attach")
    with pytest.raises(xmlrpc.client.Fault) as refused:
        sm_exec(host, "vdi_create", ["1048576", "d", "", "", "false", "", "", "false"],
                session_ref="OpaqueRef:not-a-session")
    # XenAPI retries SESSION_INVALID by logging in again, which a driver cannot: it gives up with fault 401.
    assert refused.value.faultCode in (202, 1200) and "xapi" in refused.value.faultString
