"""The classic `<Type>SR` executable, driven with the methodCall documents xapi sends."""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIRSR = str(REPO / "bin" / "DirSR")


def run(argv_xml, timeout=60):
    p = subprocess.run([sys.executable, DIRSR, *argv_xml], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr  # classic executables always exit 0; errors are faults
    return p.stdout


def call(command, args=(), **keys):
    struct = {"host_ref": "OpaqueRef:h", "session_ref": "OpaqueRef:s", "command": command, "args": list(args),
              "device_config": keys.pop("device_config", {"SRmaster": "true"}), **keys}
    out = run([xmlrpc.client.dumps((struct,), command)])
    return xmlrpc.client.loads(out)[0][0]


def fault_code(fn, *a, **k):
    with pytest.raises(xmlrpc.client.Fault) as e:
        fn(*a, **k)
    return e.value.faultCode, e.value.faultString


def test_driver_info_without_session(example_state):
    struct = {"command": "sr_get_driver_info", "args": [], "device_config": {}}
    info = xmlrpc.client.loads(run([xmlrpc.client.dumps((struct,), "sr_get_driver_info")]))[0][0]
    assert info["name"] == "Directory SR example" and "VDI_CREATE" in info["capabilities"]
    assert info["configuration"] == [{"key": "path", "description": info["configuration"][0]["description"]}]


def test_sr_and_vdi_lifecycle(example_state, sr_dir):
    dc = {"SRmaster": "true", "path": sr_dir}
    assert call("sr_create", ["0"], sr_uuid="c1", device_config=dc) is None
    assert call("sr_attach", sr_uuid="c1", device_config=dc) is None
    made = call("vdi_create", ["4096", "disk", "desc", "", "false", "", "", "false"], sr_uuid="c1",
                device_config=dc)
    assert set(made) == {"uuid", "location"}
    assert call("vdi_delete", sr_uuid="c1", vdi_uuid=made["uuid"], vdi_location=made["location"],
                device_config=dc) is None
    code, text = fault_code(call, "vdi_delete", sr_uuid="c1", vdi_uuid=made["uuid"], device_config=dc)
    assert code == 144 and made["uuid"] in text
    assert fault_code(call, "vdi_snapshot", sr_uuid="c1", vdi_uuid="x", device_config=dc)[0] in (38, 144)


def test_unimplemented_verb_is_fault_38(example_state, sr_dir):
    dc = {"SRmaster": "true", "path": sr_dir}
    call("sr_create", ["0"], sr_uuid="c2", device_config=dc)
    call("sr_attach", sr_uuid="c2", device_config=dc)
    made = call("vdi_create", ["512", "d", "", "", "false", "", "", "false"], sr_uuid="c2", device_config=dc)
    assert fault_code(call, "vdi_snapshot", sr_uuid="c2", vdi_uuid=made["uuid"], device_config=dc)[0] == 38


@pytest.mark.parametrize("argv,code", [
    ([], 143),
    (["<methodCall><bad"], 143),
    (["a", "b"], 143),
    ([xmlrpc.client.dumps(("x",), "sr_attach")], 143),
    ([xmlrpc.client.dumps(({"command": "no_such", "args": []},), "no_such")], 143),
    ([xmlrpc.client.dumps(({"command": "vdi_create", "args": ["x"], "device_config": {}, "sr_uuid": "s"},),
                          "vdi_create")], 1),
    ([xmlrpc.client.dumps(({"command": "vdi_create", "args": ["x", "", "", "", "false", "", "", "false"],
                            "device_config": {}, "sr_uuid": "s"},), "vdi_create")], 1),
    ([xmlrpc.client.dumps(({"command": "vdi_attach", "args": ["maybe"], "device_config": {}, "sr_uuid": "s",
                            "vdi_uuid": "v"},), "vdi_attach")], 1),
    ([xmlrpc.client.dumps(({"command": "sr_attach", "args": [], "device_config": {}},), "sr_attach")], 1),
])
def test_bad_requests_are_faults(example_state, argv, code):
    out = run(argv)
    with pytest.raises(xmlrpc.client.Fault) as e:
        xmlrpc.client.loads(out)
    assert e.value.faultCode == code and e.value.faultString


def test_generate_config_is_a_methodcall_for_attach_from_config(example_state):
    text = call("vdi_generate_config", sr_uuid="s", vdi_uuid="v", vdi_location="v",
                device_config={"path": "/p"})
    params, method = xmlrpc.client.loads(text)
    assert method == "vdi_attach_from_config"
    assert params[0]["command"] == "vdi_attach_from_config" and params[0]["device_config"] == {"path": "/p"}
