"""One driver, four transports: the same calls give the same answers and the same typed errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import xmlrpc.client
from pathlib import Path

import pytest

from smapi.core.driver import load_driver
from smapi.interface.errors import SmapiError, Unimplemented, Vdi_does_not_exist
from smapi.rpc.client import connect
from smapi.rpc.jsonrpc import make_jsonrpc_server
from smapi.rpc.plugin_dir import install_plugin
from smapi.rpc.xmlrpc import make_xmlrpc_server
from tests.conftest import EXAMPLE_DRIVER

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clients(tmp_path, example_state):
    dispatcher = load_driver(EXAMPLE_DRIVER).dispatcher("storage")
    servers = []
    for make, name in ((make_xmlrpc_server, "x.sock"), (make_jsonrpc_server, "j.sock")):
        server = make(dispatcher, unix_path=str(tmp_path / name))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    install_plugin(EXAMPLE_DRIVER, str(tmp_path / "plugin"), api="storage")
    yield {
        "xmlrpc": connect(f"xmlrpc+unix://{tmp_path / 'x.sock'}"),
        "jsonrpc": connect(f"jsonrpc+unix://{tmp_path / 'j.sock'}"),
        "exec": connect(f"exec://{tmp_path / 'plugin'}"),
    }
    for s in servers:
        s.shutdown()
        s.server_close()


def classic(command, args=(), **keys):
    struct = {"host_ref": "OpaqueRef:h", "command": command, "args": list(args), **keys}
    out = subprocess.run([sys.executable, str(REPO / "bin" / "DirSR"), xmlrpc.client.dumps((struct,), command)],
                         capture_output=True, text=True, timeout=60, env=os.environ.copy()).stdout
    return xmlrpc.client.loads(out)[0][0]


def test_same_answers_over_every_transport(clients, sr_dir):
    first = clients["xmlrpc"]
    first.SR.create(dbg="t", sr="s", device_config={"path": sr_dir}, physical_size=0)
    first.SR.attach(dbg="t", sr="s", device_config={"path": sr_dir})
    made = first.VDI.create(dbg="t", sr="s", vdi_info={"virtual_size": 3 << 40, "name_label": "big"})
    queries = {name: c.Query.query(dbg="t") for name, c in clients.items()}
    assert len({repr(q) for q in queries.values()}) == 1
    stats = {name: c.VDI.stat(dbg="t", sr="s", vdi=made["vdi"]) for name, c in clients.items()}
    assert all(s == made for s in stats.values())
    for name, c in clients.items():
        with pytest.raises(Unimplemented) as e:
            c.VDI.snapshot(dbg="t", sr="s", vdi_info=made)
        assert e.value.params == ("VDI.snapshot",), name
        with pytest.raises(Vdi_does_not_exist):
            c.VDI.destroy(dbg="t", sr="s", vdi="missing")
    # The classic executable reaches the same driver through its command adapter.
    dc = {"path": sr_dir, "SRmaster": "true"}
    info = classic("sr_get_driver_info", device_config={})
    assert info["name"] == queries["xmlrpc"]["name"] and info["capabilities"] == queries["xmlrpc"]["features"]
    with pytest.raises(xmlrpc.client.Fault) as fault:
        classic("vdi_snapshot", sr_uuid="s", vdi_uuid=made["vdi"], device_config=dc)
    assert fault.value.faultCode == 38
    classic("vdi_delete", sr_uuid="s", vdi_uuid=made["vdi"], device_config=dc)
    for c in clients.values():
        with pytest.raises(SmapiError) as e:
            c.VDI.stat(dbg="t", sr="s", vdi=made["vdi"])
        assert isinstance(e.value, Vdi_does_not_exist)


def test_demo_runs(tmp_path):
    p = subprocess.run([sys.executable, "-m", "smapi.demo", str(tmp_path / "demo-sr")], capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "every read matched what was written" in p.stdout
    assert (tmp_path / "demo-disk.raw").stat().st_size == 64 << 20
    assert any((tmp_path / "demo-sr").iterdir())
