"""The README's main command: a file SR in ./demo-sr, driven end to end over every transport.

It creates the SR, writes known data into a VDI, snapshots, writes more, clones, composes, scans, garbage
collects, exports the VDI to a raw file and checks every read against an in-memory model by checksum. Each step
goes through a different way in: XML-RPC, JSON-RPC, per-verb executables and the classic `FileSR` executable,
all served by the same dispatcher.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import threading
import uuid
import xmlrpc.client
from typing import Any, Dict, List

from smapi.common import commands

DRIVER = "smapi.drivers.file:FileDriver"
MiB = 1 << 20
SIZE = 64 * MiB


def _say(text: str) -> None:
    print(text, flush=True)


def _pattern(seed: str, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:length])


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class Demo:
    def __init__(self, sr_path: str, work: str) -> None:
        from smapi.core.driver import load_driver
        from smapi.sr.enginedriver import EngineDriver

        self.sr_path = sr_path
        self.work = work
        self.sr = str(uuid.uuid4())
        driver = load_driver(DRIVER)
        if not isinstance(driver, EngineDriver):
            raise TypeError(f"the demo needs a driver run by the SR engine, not {DRIVER}")
        self.driver = driver
        self.models: Dict[str, bytearray] = {}
        self.classic_sr = os.path.join(work, "sm", "FileSR")

    def write(self, vdi: str, offset: int, data: bytes) -> None:
        handle = self.driver.open_vdi(self.sr, vdi, writable=True)
        try:
            handle.write(offset, data)
            handle.flush()
        finally:
            handle.close()
        self.models[vdi][offset:offset + len(data)] = data

    def check(self, vdi: str, label: str) -> None:
        handle = self.driver.open_vdi(self.sr, vdi)
        try:
            content = handle.read(0, handle.size)
        finally:
            handle.close()
        expected = bytes(self.models[vdi])
        if content != expected:
            raise SystemExit(f"demo: {label} reads differently from what was written")
        _say(f"    check {label}: sha256 {_digest(content)} as expected")

    def classic(self, command: str, **keys: Any) -> Any:
        struct = {"host_ref": "OpaqueRef:demo", "command": command, "args": keys.pop("args", []),
                  "device_config": {"path": self.sr_path, "SRmaster": "true", "gc": "sync"}, "sr_uuid": self.sr,
                  **keys}
        # the FileSR executable as `smapi classic-install` writes it (from any install, not only a checkout)
        out = commands.run([self.classic_sr, xmlrpc.client.dumps((struct,), command)], timeout=None).stdout
        return xmlrpc.client.loads(out)[0][0]


def _tour(demo: Demo, xml: Any, jsn: Any, exe: Any, config: Dict[str, str], sr_path: str) -> int:
    """The walk through the transports and verbs, checking every read against the model."""
    sr = demo.sr
    _say(f"driver: {xml.Query.query(dbg='demo')['name']}")
    xml.SR.create(dbg="demo", sr=sr, device_config=config, physical_size=0)
    xml.SR.attach(dbg="demo", sr=sr, device_config=config)
    _say(f"1. XML-RPC     SR.create + SR.attach: SR {sr} in {sr_path}")

    disk = jsn.VDI.create(dbg="demo", sr=sr, vdi_info={"virtual_size": SIZE, "name_label": "demo disk"})
    vdi = disk["vdi"]
    demo.models[vdi] = bytearray(disk["virtual_size"])
    _say(f"2. JSON-RPC    VDI.create: {vdi} ({disk['virtual_size'] // MiB} MiB)")
    demo.write(vdi, 0, _pattern("first", 8 * MiB))
    _say("   wrote 8 MiB of known data at offset 0")
    demo.check(vdi, "the disk")

    snap = exe.VDI.snapshot(dbg="demo", sr=sr, vdi_info=exe.VDI.stat(dbg="demo", sr=sr, vdi=vdi))
    demo.models[snap["vdi"]] = bytearray(demo.models[vdi])
    _say(f"3. per-verb    VDI.snapshot: {snap['vdi']} (is_a_snapshot={snap['is_a_snapshot']}, "
         f"snapshot_of={snap['snapshot_of'][:8]}...)")
    demo.write(vdi, 16 * MiB, _pattern("second", 4 * MiB))
    _say("   wrote 4 MiB more at offset 16 MiB")
    demo.check(vdi, "the disk")
    demo.check(snap["vdi"], "the snapshot (unchanged)")

    made = demo.classic("vdi_clone", vdi_uuid=vdi, vdi_location=vdi)
    clone = made["uuid"]
    demo.models[clone] = bytearray(demo.models[vdi])
    _say(f"4. classic     vdi_clone: {clone}")
    demo.write(clone, 32 * MiB, _pattern("clone", 2 * MiB))
    demo.check(clone, "the clone after its own write")
    demo.check(vdi, "the disk (untouched by the clone's write)")

    # compose(vdi1, vdi2): vdi2's own updates (what it wrote since its last snapshot/clone) go on top of vdi1.
    delta = xml.VDI.snapshot(dbg="demo", sr=sr, vdi_info=xml.VDI.stat(dbg="demo", sr=sr, vdi=clone))
    demo.models[delta["vdi"]] = bytearray(demo.models[clone])
    demo.write(clone, 40 * MiB, _pattern("update", MiB))
    xml.VDI.compose(dbg="demo", sr=sr, vdi1=snap["vdi"], vdi2=clone)
    composed = bytearray(demo.models[snap["vdi"]])
    composed[40 * MiB:41 * MiB] = _pattern("update", MiB)
    demo.models[clone] = composed
    _say("5. XML-RPC     VDI.compose: the clone's newest update layered onto the first snapshot")
    demo.check(clone, "the composed clone")

    vdis = jsn.SR.scan(dbg="demo", sr=sr)
    _say(f"6. JSON-RPC    SR.scan: {len(vdis)} VDIs: " + ", ".join(
        f"{v['name_label'] or v['vdi'][:8]}{' (snapshot)' if v['is_a_snapshot'] else ''}" for v in vdis))
    xml.VDI.destroy(dbg="demo", sr=sr, vdi=delta["vdi"])
    del demo.models[delta["vdi"]]
    result = demo.driver.gc(sr)
    _say(f"7. GC after destroying the intermediate snapshot: {result}")
    for v in list(demo.models):
        demo.check(v, f"VDI {v[:8]} after GC")

    out = os.path.join(sr_path, "..", "demo-disk.raw")
    handle = demo.driver.open_vdi(sr, vdi)
    try:
        with open(out, "wb") as f:
            for offset in range(0, handle.size, 4 * MiB):
                f.write(handle.read(offset, min(4 * MiB, handle.size - offset)))
    finally:
        handle.close()
    with open(out, "rb") as f:
        exported = f.read()
    if exported != bytes(demo.models[vdi]):
        raise SystemExit("demo: the raw export differs from the model")
    _say(f"8. exported the disk to {os.path.abspath(out)}: sha256 {_digest(exported)} matches")
    _say("demo finished: every read matched what was written")
    return 0


def main(argv: List[str]) -> int:
    from smapi.rpc.classic_install import install_classic
    from smapi.rpc.client import connect
    from smapi.rpc.jsonrpc import make_jsonrpc_server
    from smapi.rpc.plugin_dir import install_plugin
    from smapi.rpc.xmlrpc import make_xmlrpc_server

    sr_path = os.path.abspath(argv[0] if argv else "demo-sr")
    shutil.rmtree(sr_path, ignore_errors=True)
    work = tempfile.mkdtemp(prefix="smapi-demo-")
    # Host-local runtime state (attached SRs, datapaths) of this demo stays in its own directory.
    os.environ["SMAPI_RUN_DIR"] = os.path.join(work, "run")
    os.environ["SMAPI_GC"] = "sync"
    servers = []
    try:
        demo = Demo(sr_path, work)
        dispatcher = demo.driver.dispatcher("storage")
        for make, name in ((make_xmlrpc_server, "xmlrpc.sock"), (make_jsonrpc_server, "jsonrpc.sock")):
            server = make(dispatcher, unix_path=os.path.join(work, name))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        install_plugin(DRIVER, os.path.join(work, "plugin"), api="storage")
        install_classic(os.path.join(work, "sm"), ["FileSR"])
        xml = connect(f"xmlrpc+unix://{os.path.join(work, 'xmlrpc.sock')}")
        jsn = connect(f"jsonrpc+unix://{os.path.join(work, 'jsonrpc.sock')}")
        exe = connect(f"exec://{os.path.join(work, 'plugin')}")
        config = {"path": sr_path, "gc": "sync"}
        return _tour(demo, xml, jsn, exe, config, sr_path)
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
