"""Changed-block tracking through the classic `FileSR` executable, with the methodCalls xapi's sm_exec sends:
the capability is advertised, and vdi_enable_cbt / vdi_snapshot / vdi_list_changed_blocks / vdi_data_destroy /
vdi_disable_cbt work, with sm's fault codes for refusals."""

from __future__ import annotations

import base64
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.sr.drivers import file_sr_factory
from tests.sr.helpers import FileSR

REPO = Path(__file__).resolve().parents[2]
FILESR = str(REPO / "bin" / "FileSR")
G = 64 * 1024


@pytest.fixture
def host(tmp_path, monkeypatch):
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    yield sut
    sut.cleanup()


def call(command: str, args=(), **keys: Any) -> Any:
    struct: Dict[str, Any] = {"host_ref": "OpaqueRef:h", "session_ref": "OpaqueRef:NULL", "command": command,
                              "args": list(args), **keys}
    p = subprocess.run([sys.executable, FILESR, xmlrpc.client.dumps((struct,), command)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return xmlrpc.client.loads(p.stdout)[0][0]


def test_classic_cbt_cycle(host) -> None:
    info = call("sr_get_driver_info", device_config={})
    assert "VDI_CONFIG_CBT" in info["capabilities"]
    dc = dict(host.device_config)
    sr = "5d3c1e0a-3f7e-4b8e-9a41-0c1d2e3f4a5b"
    call("sr_create", ["0"], sr_uuid=sr, device_config=dc)
    call("sr_attach", sr_uuid=sr, device_config=dc)
    vdi = call("vdi_create", [str(4 << 20), "d", "", "", "false", "", "", "false"], sr_uuid=sr,
               device_config=dc)["uuid"]
    keys = {"sr_uuid": sr, "device_config": dc}
    assert call("vdi_enable_cbt", vdi_uuid=vdi, vdi_location=vdi, **keys) is None
    s1 = call("vdi_snapshot", vdi_uuid=vdi, vdi_location=vdi, driver_params={}, **keys)["uuid"]
    FileSR(dc["path"], sr=sr).write(vdi, 2 * G, b"changed")
    s2 = call("vdi_snapshot", vdi_uuid=vdi, vdi_location=vdi, driver_params={}, **keys)["uuid"]
    bitmap = base64.b64decode(call("vdi_list_changed_blocks", [s2], vdi_uuid=s1, vdi_location=s1, **keys))
    assert bitmap[0] == 0x20 and not any(bitmap[1:])
    with pytest.raises(xmlrpc.client.Fault) as e:
        call("vdi_data_destroy", vdi_uuid=vdi, vdi_location=vdi, **keys)
    assert e.value.faultCode == 66  # VDIType: only a snapshot's data can be destroyed
    assert call("vdi_data_destroy", vdi_uuid=s1, vdi_location=s1, **keys) is None
    assert call("vdi_disable_cbt", vdi_uuid=vdi, vdi_location=vdi, **keys) is None
    with pytest.raises(xmlrpc.client.Fault) as e:
        call("vdi_list_changed_blocks", [vdi], vdi_uuid=s1, vdi_location=s1, **keys)
    assert e.value.faultCode == 460  # CBTChangedBlocksError: tracking is off
