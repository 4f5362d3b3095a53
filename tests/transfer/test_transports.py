"""The Transfer API over every transport: XML-RPC and JSON-RPC servers (through smapi.client), the XenAPI host
plugin executable (bin/transfer), and the `smapi transfer` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import xmlrpc.client

import pytest

from smapi.interface.errors import VDINotFound
from tests.transfer.conftest import MiB, curl, parse_record, status_of

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(REPO, "bin", "transfer")


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_rpc_servers(fsr, service, protocol):
    from smapi.rpc.client import connect
    from smapi.transfer.driver import TransferDriver

    if protocol == "xmlrpc":
        from smapi.rpc.xmlrpc import make_xmlrpc_server as make
    else:
        from smapi.rpc.jsonrpc import make_jsonrpc_server as make
    server = make(TransferDriver().dispatcher("transfer"), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "http" if protocol == "xmlrpc" else "jsonrpc+http"
        client = connect(f"{scheme}://127.0.0.1:{server.address[1]}", api="transfer")
        vdi = fsr.create(4 * MiB)
        handle = client.Transfer.expose(transfer_mode="http", vdi_uuid=vdi, network_uuid="management",
                                        network_port="0")
        rec = parse_record(client.Transfer.get_record(record_handle=handle))
        assert rec["vdi_uuid"] == vdi and rec["status"] == "exposed"
        url = f"http://127.0.0.1:{rec['port']}{rec['url_path']}"
        r = curl("--digest", "-u", f"{rec['username']}:{rec['password']}", "-r", "0-3", url)
        assert status_of(r) == 206 and r.stdout == b"\0" * 4
        with pytest.raises(VDINotFound):
            client.Transfer.get_record(vdi_uuid="11111111-2222-3333-4444-555555555555")
        assert client.Transfer.unexpose(record_handle=handle) == "OK"
        assert client.Transfer.cleanup() == "OK"
        client.close()
    finally:
        server.shutdown()
        server.server_close()


def _plugin(fn: str, args: dict) -> object:
    call = xmlrpc.client.dumps(("OpaqueRef:session", args), methodname=fn)
    r = subprocess.run([sys.executable, PLUGIN, call], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (value,), _ = xmlrpc.client.loads(r.stdout)
    return value


def test_host_plugin_calling_convention(fsr, service):
    vdi = fsr.create(4 * MiB)
    out = _plugin("expose", {"transfer_mode": "http", "vdi_uuid": vdi, "network_uuid": "management",
                             "network_port": "0"})
    assert out["Status"] == "Success"
    handle = out["Value"]
    rec = parse_record(_plugin("get_record", {"record_handle": handle})["Value"])
    assert rec["record_handle"] == handle
    # Errors as XenAPIPlugin.dispatch reports them: details[2] is the error class.
    out = _plugin("expose", {"transfer_mode": "http", "vdi_uuid": vdi, "network_uuid": "management"})
    assert out == {"Status": "Failure", "ErrorDescription": ["XENAPI_PLUGIN_FAILURE", "expose", "VDIInUse",
                                                             out["ErrorDescription"][3]]}
    out = _plugin("get_record", {"vdi_uuid": "11111111-2222-3333-4444-555555555555"})
    assert out["ErrorDescription"][:3] == ["XENAPI_PLUGIN_FAILURE", "get_record", "VDINotFound"]
    out = _plugin("expose", {"vdi_uuid": vdi})
    assert out["ErrorDescription"][:3] == ["XENAPI_PLUGIN_FAILURE", "expose", "ArgumentError"]
    assert _plugin("nope", {}) == {"Status": "Failure", "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION",
                                                                             "nope"]}
    assert _plugin("prepare_transfervm_template", {})["Status"] == "Success"
    assert _plugin("unexpose", {"record_handle": handle}) == {"Status": "Success", "Value": "OK"}
    assert _plugin("unexpose", {"record_handle": handle})["ErrorDescription"][2] == "VDINotInUse"


def test_cli(fsr, service):
    from click.testing import CliRunner

    from smapi.cli.main import cli

    vdi = fsr.create(4 * MiB)
    runner = CliRunner()
    r = runner.invoke(cli, ["transfer", "expose", "http", vdi, "--port", "0"])
    assert r.exit_code == 0, r.output
    handle = r.output.strip()
    r = runner.invoke(cli, ["transfer", "get-record", "--vdi", vdi, "--json"])
    assert r.exit_code == 0 and f'"record_handle": "{handle}"' in r.output
    r = runner.invoke(cli, ["transfer", "expose", "http", vdi, "--port", "0"])
    assert r.exit_code == 1 and "VDIInUse" in r.output
    assert runner.invoke(cli, ["transfer", "ips-needed", vdi]).output.strip() == "1"
    r = runner.invoke(cli, ["transfer", "unexpose", handle])
    assert r.exit_code == 0 and r.output.strip() == "OK"
    r = runner.invoke(cli, ["transfer", "get-record", "--vdi", vdi])
    assert 'status="unused"' in r.output
    assert runner.invoke(cli, ["transfer", "cleanup"]).output.strip() == "OK"
