"""The README's main command: one driver, answered over every transport, on a directory SR in ./demo-sr.

Until the VHD file SR lands this uses the example driver (examples/dirsr.py): it creates an SR in a local
directory, then runs the same calls over XML-RPC (Unix socket), JSON-RPC (Unix socket), per-verb
executables and the classic `DirSR` executable, and shows that the answers agree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable, Dict, List

REPO = Path(__file__).resolve().parent.parent
DRIVER = f"{REPO / 'examples' / 'dirsr.py'}:DirSR"


def _say(text: str) -> None:
    print(text, flush=True)


def _serve(make_server: Callable[..., Any], dispatcher: Any, path: str) -> Any:
    server = make_server(dispatcher, unix_path=path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: List[str]) -> int:
    from smapi.client import connect
    from smapi.driver import load_driver
    from smapi.interface.apis import get_api
    from smapi.interface.errors import SmapiError
    from smapi.rpc.dispatcher import Dispatcher
    from smapi.rpc.jsonrpc import make_jsonrpc_server
    from smapi.rpc.plugin_dir import install_plugin
    from smapi.rpc.xmlrpc import make_xmlrpc_server

    sr_path = os.path.abspath(argv[0] if argv else "demo-sr")
    shutil.rmtree(sr_path, ignore_errors=True)
    work = tempfile.mkdtemp(prefix="smapi-demo-")
    os.environ["SMAPI_EXAMPLE_STATE"] = os.path.join(work, "state")
    sr = str(uuid.uuid4())
    try:
        dispatcher = Dispatcher(get_api("storage"), load_driver(DRIVER).implementations("storage"))
        xml_sock, json_sock = os.path.join(work, "xmlrpc.sock"), os.path.join(work, "jsonrpc.sock")
        servers = [_serve(make_xmlrpc_server, dispatcher, xml_sock), _serve(make_jsonrpc_server, dispatcher, json_sock)]
        plugin_dir = os.path.join(work, "plugin")
        install_plugin(DRIVER, plugin_dir, api="storage")
        clients = {
            "XML-RPC": connect(f"xmlrpc+unix://{xml_sock}"),
            "JSON-RPC": connect(f"jsonrpc+unix://{json_sock}"),
            "per-verb": connect(f"exec://{plugin_dir}"),
        }
        x = clients["XML-RPC"]
        _say(f"driver: {x.Query.query(dbg='demo')['name']}")
        x.SR.create(dbg="demo", sr=sr, device_config={"path": sr_path}, physical_size=0)
        x.SR.attach(dbg="demo", sr=sr, device_config={"path": sr_path})
        _say(f"SR {sr} created and attached in {sr_path}")
        made: Dict[str, Any] = {}
        for name, c in clients.items():
            info = c.VDI.create(dbg="demo", sr=sr, vdi_info={"virtual_size": 10 << 20, "name_label": f"via {name}"})
            made[name] = info
            _say(f"  {name:9s} VDI.create -> {info['vdi']} ({info['virtual_size']} bytes)")
        scans = {name: sorted(v["vdi"] for v in c.SR.scan(dbg="demo", sr=sr)) for name, c in clients.items()}
        assert len({json.dumps(s) for s in scans.values()}) == 1, scans
        _say(f"  SR.scan agrees over all transports: {len(scans['XML-RPC'])} VDIs")
        for name, c in clients.items():
            try:
                c.VDI.snapshot(dbg="demo", sr=sr, vdi_info=made[name])
            except SmapiError as e:
                _say(f"  {name:9s} VDI.snapshot -> {e.wire_name}: {e.message()}")
        # The classic executable, called as xapi calls it.
        struct = {"host_ref": "OpaqueRef:demo", "command": "vdi_delete", "args": [],
                  "device_config": {"path": sr_path, "SRmaster": "true"}, "sr_uuid": sr,
                  "vdi_uuid": made["per-verb"]["vdi"]}
        request = xmlrpc.client.dumps((struct,), "vdi_delete")
        out = subprocess.run([sys.executable, str(REPO / "bin" / "DirSR"), request], capture_output=True, text=True,
                             check=True).stdout
        xmlrpc.client.loads(out)
        _say(f"  classic   vdi_delete {made['per-verb']['vdi']} -> ok")
        left = x.SR.scan(dbg="demo", sr=sr)
        _say(f"{len(left)} VDIs left: " + ", ".join(v["name_label"] for v in left))
        for s in servers:
            s.shutdown()
            s.server_close()
        _say("demo finished: the same driver answered identically over XML-RPC, JSON-RPC, per-verb and classic "
             "executables")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
