"""`smapi classic-install` writes xapi's /opt/xensource/sm/<Type>SR executables; FileSR, run as sm_exec runs it,
answers vdi_attach in blktap2's shape and refuses to delete an SR that still holds VDIs (SR_NOT_EMPTY)."""

from __future__ import annotations

import os
import subprocess
import xmlrpc.client
from typing import Any, Dict, Iterator

import pytest
from click.testing import CliRunner

import smapi
from smapi.cli.main import cli
from smapi.rpc.classic_install import CLASSIC_EXECUTABLES
from tests.sr.drivers import file_sr_factory

SR = "0f5c7f3e-2a4b-4c8e-9d3e-5a1b2c3d4e5f"


@pytest.fixture
def installed(tmp_path) -> Iterator[Dict[str, Any]]:
    target = tmp_path / "opt-xensource-sm"
    result = CliRunner().invoke(cli, ["classic-install", str(target)])
    assert result.exit_code == 0, result.output
    sut = file_sr_factory(tmp_path)
    try:
        yield {"dir": target, "env": {**os.environ, **sut.env}, "dc": {"SRmaster": "true", **sut.device_config}}
    finally:
        sut.cleanup()


def sm_exec(installed: Dict[str, Any], exe: str, command: str, args: Any = (), **keys: Any) -> Any:
    """One call as xapi's sm_exec makes it (argv[1] is the methodCall; the process always exits 0)."""
    struct = {"host_ref": "OpaqueRef:h", "session_ref": "OpaqueRef:NULL", "command": command,
              "args": list(args), "device_config": installed["dc"], "sr_uuid": SR, **keys}
    p = subprocess.run([str(installed["dir"] / exe), xmlrpc.client.dumps((struct,), command)],
                       capture_output=True, text=True, timeout=60, env=installed["env"], cwd="/")
    assert p.returncode == 0, p.stderr
    return xmlrpc.client.loads(p.stdout)[0][0]


def test_every_driver_gets_an_executable_that_needs_no_checkout(installed) -> None:
    assert sorted(os.listdir(installed["dir"])) == sorted(CLASSIC_EXECUTABLES)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(smapi.__file__)))
    for name in CLASSIC_EXECUTABLES:
        text = (installed["dir"] / name).read_text()
        assert "/bin/" not in text.split("\n", 3)[3]  # the launcher body loads the package, not bin/
        assert repr(package_parent) in text
        info = sm_exec(installed, name, "sr_get_driver_info")
        assert info["required_api_version"] and "VDI_ATTACH" in info["capabilities"], (name, info)


def test_file_sr_attach_shape_and_not_empty(installed) -> None:
    assert sm_exec(installed, "FileSR", "sr_create", ["0"]) is None
    assert sm_exec(installed, "FileSR", "sr_attach") is None
    made = sm_exec(installed, "FileSR", "vdi_create",
                   ["4194304", "disk", "", "", "false", "", "", "false"])
    vdi = {"vdi_uuid": made["uuid"], "vdi_location": made["location"]}
    attached = sm_exec(installed, "FileSR", "vdi_attach", ["true"], **vdi)
    assert set(attached) == {"params_nbd", "o_direct", "o_direct_reason", "xenstore_data"}
    assert attached["params_nbd"].startswith("nbd:unix:") and attached["xenstore_data"]["vdi-uuid"] == made["uuid"]
    assert sm_exec(installed, "FileSR", "vdi_detach", **vdi) is None
    with pytest.raises(xmlrpc.client.Fault) as refused:
        sm_exec(installed, "FileSR", "sr_delete")
    assert refused.value.faultCode == 39  # xapi turns 39 into SR_NOT_EMPTY
    assert "[opterr=" in refused.value.faultString and "1 VDI" in refused.value.faultString
    assert sm_exec(installed, "FileSR", "vdi_delete", **vdi) is None
    assert sm_exec(installed, "FileSR", "sr_delete") is None


def test_plugin_install_defaults_and_refusals(tmp_path) -> None:
    root = tmp_path / "root"
    ok = CliRunner().invoke(cli, ["plugin-install", "--driver", "file", "--root", str(root)])
    assert ok.exit_code == 0, ok.output
    assert sorted(os.listdir(root / "volume")) == ["smapi-file"] and os.listdir(root / "datapath") == ["smapi"]
    both = CliRunner().invoke(cli, ["plugin-install", "--driver", "file", "--root", str(root), str(tmp_path / "d")])
    assert both.exit_code != 0 and "not both" in both.output
    bad = CliRunner().invoke(cli, ["plugin-install", "--driver", "file", "--root", str(root), "--name", ".x"])
    assert bad.exit_code == 1 and "invalid plugin name" in bad.output
    unknown = CliRunner().invoke(cli, ["classic-install", str(tmp_path / "sm"), "--only", "EXTSR"])
    assert unknown.exit_code == 1 and "unknown classic executable" in unknown.output
