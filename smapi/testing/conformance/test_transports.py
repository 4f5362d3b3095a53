"""The same create / stat / snapshot sequence over the dispatcher, per-verb executables and the classic
executable gives the same vdi_info records (up to the identifiers and times that must differ)."""

from __future__ import annotations

import re
import subprocess
import xmlrpc.client
from pathlib import Path
from typing import Any, Dict, List, Tuple

from smapi.interface.storage import EPOCH
from smapi.rpc.client import connect
from smapi.rpc.plugin_dir import install_plugin, launcher_header
from smapi.testing.client import MiB, SRClient
from smapi.testing.features import needs

SIZE = 3 * MiB + 5
NAME, DESCRIPTION, SM_CONFIG = "parity", "same everywhere", {"parity-key": "parity-value"}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Records = Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any], Dict[str, Any]]


def _normalise(value: Any, names: Dict[str, str]) -> Any:
    """Identifiers by role (`<vdi>`, `<snapshot>`, `<sr>`), other uuids as `<uuid>`, times as `<time>`."""
    if isinstance(value, dict):
        out = {k: _normalise(v, names) for k, v in value.items()}
        if out.get("snapshot_time") not in (None, EPOCH):
            out["snapshot_time"] = "<time>"
        return out
    if isinstance(value, str):
        for ident, role in names.items():
            value = value.replace(ident, role)
        return UUID_RE.sub("<uuid>", value)
    return value


def _sequence(call: Any) -> Records:
    """create, stat, snapshot, stat of the snapshot through `call(verb, **args)`."""
    made = call("VDI.create", vdi_info={"virtual_size": SIZE, "name_label": NAME, "name_description": DESCRIPTION,
                                        "sm_config": SM_CONFIG})
    stat = call("VDI.stat", vdi=made["vdi"])
    snap = call("VDI.snapshot", vdi_info=stat)
    return made, stat, snap, call("VDI.stat", vdi=snap["vdi"])


def _classic_launcher(tmp_path: Path, driver_spec: str) -> Path:
    """A `<Type>SR` executable like bin/FileSR for whatever driver is under test."""
    script = tmp_path / "ConformanceSR"
    # the interpreter and module search path of this installation, as `smapi classic-install` writes them
    script.write_text(launcher_header() + f"from smapi.rpc.classic import main\nsys.exit(main({driver_spec!r}))\n")
    script.chmod(0o755)
    return script


def _classic(script: Path, command: str, args: List[str], **keys: Any) -> Any:
    """Run it as xapi does: one methodCall document in argv[1], one methodResponse on stdout."""
    struct = {"host_ref": "OpaqueRef:host", "session_ref": "OpaqueRef:session", "command": command,
              "args": args, **keys}
    proc = subprocess.run([str(script), xmlrpc.client.dumps((struct,), command)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # classic executables always exit 0, errors are faults
    return xmlrpc.client.loads(proc.stdout)[0][0]


@needs("VDI_SNAPSHOT")
def test_same_vdi_info_over_dispatcher_per_verb_and_classic(sr: SRClient, tmp_path: Path) -> None:
    results: Dict[str, Records] = {}
    results["dispatcher"] = _sequence(sr.v)
    plugin = tmp_path / "plugin"
    install_plugin(sr.sut.driver_spec, str(plugin), api="storage")
    client = connect(f"exec://{plugin}")
    results["per-verb"] = _sequence(lambda verb, **a: client.call(verb, dbg="parity", sr=sr.sr, **a))

    # Classic commands return {uuid, location}, not records: the records are read back with VDI.stat.
    script = _classic_launcher(tmp_path, sr.sut.driver_spec)
    dc = {**sr.device_config, "SRmaster": "true"}
    made = _classic(script, "vdi_create", [str(SIZE), NAME, DESCRIPTION, "", "false", "", "", "false"],
                    sr_uuid=sr.sr, device_config=dc, vdi_sm_config=SM_CONFIG)
    assert made["uuid"] == made["location"]
    assert _classic(script, "vdi_update", [], sr_uuid=sr.sr, vdi_uuid=made["uuid"], vdi_location=made["location"],
                    device_config=dc) is None
    stat = sr.stat(made["uuid"])  # before the snapshot, as in the other sequences: a snapshot moves the data
    snapped = _classic(script, "vdi_snapshot", [], sr_uuid=sr.sr, vdi_uuid=made["uuid"],
                       vdi_location=made["location"], device_config=dc)
    snap = sr.stat(snapped["uuid"])
    results["classic"] = (stat, stat, snap, snap)

    normalised = {}
    for transport, (made_i, stat_i, snap_i, snap_stat) in results.items():
        names = {sr.sr: "<sr>", made_i["vdi"]: "<vdi>", snap_i["vdi"]: "<snapshot>"}
        normalised[transport] = [_normalise(r, names) for r in (made_i, stat_i, snap_i, snap_stat)]
        # within one transport the verbs agree with each other
        assert normalised[transport][0] == normalised[transport][1], f"{transport}: create vs stat"
        assert normalised[transport][2] == normalised[transport][3], f"{transport}: snapshot vs stat"
    for transport in ("per-verb", "classic"):
        for step, (got, want) in enumerate(zip(normalised[transport], normalised["dispatcher"])):
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
            assert not diff, f"{transport} vs dispatcher, record {step} (create, stat, snapshot, stat): {diff}"
    # and the records are the ones the calls asked for
    first, _, snap_rec, _ = normalised["dispatcher"]
    assert first["virtual_size"] >= SIZE and first["name_label"] == NAME
    assert snap_rec["is_a_snapshot"] is True and snap_rec["snapshot_of"] == "<vdi>"
    assert set(sr.scan()) == {r[i]["vdi"] for r in results.values() for i in (0, 2)}
