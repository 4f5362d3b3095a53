"""A file SR installed with `smapi plugin-install --root`, driven as xapi-storage-script drives it: SR create and
attach, a volume, a guest (domain 7) datapath that must offer XenDisk first, real writes through the NBD export,
then everything torn down. Non-persistent datapaths drop their writes at close."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from typing import Any, Dict, Iterator

import pytest
from click.testing import CliRunner

from smapi import datapath as dpio
from smapi.cli.main import cli
from tests.sr.drivers import file_sr_factory
from tests.toolstack.storage_script import StorageScript, StorageScriptError, implementation

TOOLS = ("nbdkit", "qemu-io")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason=f"needs {', '.join(TOOLS)} (ci/apt-packages.txt)")
MiB = 1024 * 1024
PLUGIN = "smapi-file"


@pytest.fixture
def host(tmp_path, monkeypatch) -> Iterator[Dict[str, Any]]:
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "xapi-storage-script"
    result = CliRunner().invoke(cli, ["plugin-install", "--driver", "file", "--root", str(root), "--name", PLUGIN])
    assert result.exit_code == 0, result.output
    run = sut.env["SMAPI_RUN_DIR"]
    try:
        yield {"xss": StorageScript(str(root)), "config": dict(sut.device_config), "root": root}
    finally:
        dpio.teardown_all(run)
        sut.cleanup()


def qemu_io(uri: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", "-f", "raw", "-c", command, uri], capture_output=True, text=True, timeout=60)


def _attached_sr(xss: StorageScript, config: Dict[str, str]) -> str:
    stored = xss.volume(PLUGIN, "SR.create", dbg="t", uuid=str(uuid.uuid4()), configuration=config, name="sr",
                        description="")
    return xss.volume(PLUGIN, "sr.attach", dbg="t", configuration=stored)  # lookup is case-insensitive


def test_layout_and_registration(host) -> None:
    root = host["root"]
    assert os.path.isfile(root / "volume" / PLUGIN / "Plugin.Query")
    assert os.path.isfile(root / "datapath" / "smapi" / "Datapath.attach")
    assert not os.path.exists(root / "volume" / PLUGIN / "Datapath.attach")
    assert not os.path.exists(root / "datapath" / "smapi" / "Volume.create")
    query = host["xss"].volume(PLUGIN, "Plugin.Query", dbg="register")
    assert query["required_api_version"] in ("3.0", "5.0")
    assert query["plugin"] == PLUGIN  # xapi's SM type comes from it, running plugins from the directory name
    assert host["xss"].supports("smapi", "NONPERSISTENT")


def test_guest_domain_flow(host) -> None:
    xss = host["xss"]
    sr = _attached_sr(xss, host["config"])
    vol = xss.volume(PLUGIN, "Volume.create", dbg="t", sr=sr, name="disk", description="", size=4 * MiB,
                     sharable=False)
    scheme, uri = xss.choose_datapath(xss.volume(PLUGIN, "Volume.stat", dbg="t", sr=sr, key=vol["key"])["uri"])
    assert scheme == "smapi"
    assert xss.datapath(scheme, "Datapath.open", dbg="t", uri=uri, persistent=True) is None
    backend = xss.datapath(scheme, "Datapath.attach", dbg="t", uri=uri, domain="7")
    kind, xendisk = backend["implementations"][0]
    assert kind == "XenDisk" and xendisk["backend_type"] == "qdisk" and xendisk["extra"] == {}
    nbd = implementation(backend, "Nbd")
    assert nbd is not None and xendisk["params"] == nbd["uri"]
    xss.datapath(scheme, "Datapath.activate", dbg="t", uri=uri, domain="7")
    assert qemu_io(nbd["uri"], "write -P 0x5a 0 1M").returncode == 0
    xss.datapath(scheme, "Datapath.deactivate", dbg="t", uri=uri, domain="7")
    xss.datapath(scheme, "Datapath.detach", dbg="t", uri=uri, domain="7")
    xss.datapath(scheme, "Datapath.close", dbg="t", uri=uri)
    # dom0 gets no XenDisk: xenopsd serves dom0's own VBDs from Nbd, BlockDevice or File
    xss.datapath(scheme, "Datapath.open", dbg="t", uri=uri, persistent=True)
    dom0 = xss.datapath(scheme, "Datapath.attach", dbg="t", uri=uri, domain="0")
    assert [k for k, _ in dom0["implementations"]][0] == "Nbd"
    xss.datapath(scheme, "Datapath.activate", dbg="t", uri=uri, domain="0")
    assert qemu_io(implementation(dom0, "Nbd")["uri"], "read -P 0x5a 0 1M").returncode == 0
    xss.datapath(scheme, "Datapath.deactivate", dbg="t", uri=uri, domain="0")
    xss.datapath(scheme, "Datapath.detach", dbg="t", uri=uri, domain="0")
    xss.datapath(scheme, "Datapath.close", dbg="t", uri=uri)
    assert xss.volume(PLUGIN, "Volume.destroy", dbg="t", sr=sr, key=vol["key"]) is None
    with pytest.raises(StorageScriptError) as failure:
        xss.volume(PLUGIN, "Volume.stat", dbg="t", sr=sr, key=vol["key"])
    assert failure.value.code == "SR_BACKEND_FAILURE"
    xss.volume(PLUGIN, "SR.detach", dbg="t", sr=sr)
    xss.volume(PLUGIN, "SR.detach", dbg="t", sr=sr)  # idempotent, as xapi-storage-script makes it


def _session(xss: StorageScript, uri: str, persistent: bool, command: str) -> int:
    xss.datapath("smapi", "Datapath.open", dbg="t", uri=uri, persistent=persistent)
    backend = xss.datapath("smapi", "Datapath.attach", dbg="t", uri=uri, domain="7")
    xss.datapath("smapi", "Datapath.activate", dbg="t", uri=uri, domain="7")
    try:
        return qemu_io(implementation(backend, "Nbd")["uri"], command).returncode
    finally:
        xss.datapath("smapi", "Datapath.deactivate", dbg="t", uri=uri, domain="7")
        xss.datapath("smapi", "Datapath.detach", dbg="t", uri=uri, domain="7")
        xss.datapath("smapi", "Datapath.close", dbg="t", uri=uri)


def test_non_persistent_writes_vanish_at_close(host) -> None:
    xss = host["xss"]
    sr = _attached_sr(xss, host["config"])
    vol = xss.volume(PLUGIN, "Volume.create", dbg="t", sr=sr, name="d", description="", size=2 * MiB,
                     sharable=False)
    _, uri = xss.choose_datapath(vol["uri"], persistent=False)
    assert _session(xss, uri, True, "write -P 0x11 0 64k") == 0
    assert _session(xss, uri, False, "write -P 0x22 0 64k") == 0
    # the next user, persistent or not, sees the content from before the non-persistent session
    assert _session(xss, uri, True, "read -P 0x11 0 64k") == 0
    assert _session(xss, uri, False, "read -P 0x11 0 64k") == 0
    xss.volume(PLUGIN, "Volume.destroy", dbg="t", sr=sr, key=vol["key"])
    xss.volume(PLUGIN, "SR.detach", dbg="t", sr=sr)


def test_unknown_scheme_is_missing_uri(host) -> None:
    with pytest.raises(StorageScriptError) as failure:
        host["xss"].choose_datapath(["file:///tmp/x", "vhd+file:///tmp/y"])
    assert failure.value.code == "MISSING_URI"


def test_snapshots_are_read_only_and_sharable_is_refused(host) -> None:
    xss = host["xss"]
    sr = _attached_sr(xss, host["config"])
    vol = xss.volume(PLUGIN, "Volume.create", dbg="t", sr=sr, name="d", description="", size=MiB, sharable=False)
    assert vol["read_write"] is True
    snap = xss.volume(PLUGIN, "Volume.snapshot", dbg="t", sr=sr, key=vol["key"])
    assert snap["read_write"] is False
    assert xss.volume(PLUGIN, "Volume.stat", dbg="t", sr=sr, key=snap["key"])["read_write"] is False
    with pytest.raises(StorageScriptError) as refused:
        xss.volume(PLUGIN, "Volume.create", dbg="t", sr=sr, name="s", description="", size=MiB, sharable=True)
    assert refused.value.params[0] == "Unimplemented" and "sharable" in refused.value.params[1]
    assert len(xss.volume(PLUGIN, "SR.ls", dbg="t", sr=sr)) == 2  # nothing was created
    xss.volume(PLUGIN, "SR.detach", dbg="t", sr=sr)


def test_attach_without_sr_uuid_finds_the_sr_by_probing(host) -> None:
    xss = host["xss"]
    made = xss.volume(PLUGIN, "SR.create", dbg="t", uuid="3c1d0e2f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                      configuration=host["config"], name="", description="")
    assert made["sr_uuid"] == "3c1d0e2f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    assert xss.volume(PLUGIN, "SR.attach", dbg="t", configuration=host["config"]) == made["sr_uuid"]
    xss.volume(PLUGIN, "SR.detach", dbg="t", sr=made["sr_uuid"])
    with pytest.raises(StorageScriptError) as nothing_there:
        xss.volume(PLUGIN, "SR.attach", dbg="t", configuration={"path": host["config"]["path"] + "-absent"})
    assert nothing_there.value.params[0] in ("Missing_configuration_parameter", "SR_does_not_exist")
