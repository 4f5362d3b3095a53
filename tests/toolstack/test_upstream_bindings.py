"""A SMAPIv3 plugin written only against xen-api's Python binding names (tests/toolstack/upstream_plugin: it
imports `xapi`, `xapi.storage.log` and `xapi.storage.api.v5.*`, never smapi) runs unchanged on smapi's `xapi`
package, called as xapi-storage-script calls it, and fails with the error objects xen-api's bindings print."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.toolstack.storage_script import StorageScript, StorageScriptError, fork_exec_rpc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PLUGIN = "dirfile"


@pytest.fixture
def xss(tmp_path, monkeypatch) -> StorageScript:
    root = tmp_path / "xapi-storage-script"
    shutil.copytree(HERE / "upstream_plugin", root / "volume" / PLUGIN, symlinks=True)
    # The scripts say `#!/usr/bin/env python3`: give them this interpreter and smapi's `xapi` package.
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return StorageScript(str(root))


def failure(xss: StorageScript, verb: str, **args: Any) -> StorageScriptError:
    with pytest.raises(StorageScriptError) as caught:
        xss.volume(PLUGIN, verb, dbg="t", **args)
    return caught.value


def test_the_plugin_imports_nothing_of_smapi() -> None:
    for script in (HERE / "upstream_plugin").glob("*.py"):
        imports = [line for line in script.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert imports and not [line for line in imports if "smapi" in line], script


def test_an_upstream_plugin_runs_unchanged(xss: StorageScript, tmp_path) -> None:
    query = xss.volume(PLUGIN, "Plugin.Query", dbg="register")
    assert query["plugin"] == "dirfile" and query["required_api_version"] == "5.0"
    config: Dict[str, str] = {"path": str(tmp_path / "sr")}
    assert xss.volume(PLUGIN, "SR.create", dbg="t", uuid="u1", configuration=config, name="n",
                      description="d") == config
    sr = xss.volume(PLUGIN, "SR.attach", dbg="t", configuration=config)
    assert xss.volume(PLUGIN, "SR.stat", dbg="t", sr=sr)["uuid"] == "u1"
    vol = xss.volume(PLUGIN, "Volume.create", dbg="t", sr=sr, name="disk", description="", size=4096,
                     sharable=False)
    assert os.path.getsize(tmp_path / "sr" / vol["key"]) == 4096
    assert xss.volume(PLUGIN, "SR.ls", dbg="t", sr=sr) == [vol]
    assert xss.volume(PLUGIN, "Volume.destroy", dbg="t", sr=sr, key=vol["key"]) is None  # unit is null
    assert xss.volume(PLUGIN, "SR.detach", dbg="t", sr=sr) is None


def test_idl_errors_travel_as_xen_apis_bindings_print_them(xss: StorageScript, tmp_path) -> None:
    config = {"path": str(tmp_path / "sr")}
    missing = failure(xss, "SR.attach", configuration=config)
    assert (missing.code, missing.params) == ("SR_BACKEND_FAILURE", ["SR_does_not_exist", config["path"]])
    xss.volume(PLUGIN, "SR.create", dbg="t", uuid="u1", configuration=config, name="", description="")
    exists = failure(xss, "SR.create", uuid="u2", configuration=config, name="", description="")
    assert (exists.code, exists.params) == ("SR_BACKEND_FAILURE_42", ["", f"An SR already exists at {config['path']}",
                                                                      ""])  # XenAPIException: code kept
    sr = "file://" + config["path"]
    gone = failure(xss, "Volume.stat", sr=sr, key="nope")
    assert (gone.code, gone.params) == ("SR_BACKEND_FAILURE", ["Volume_does_not_exist", "nope"])
    skeleton = failure(xss, "Volume.resize", sr=sr, key="nope", new_size=1)
    assert (skeleton.code, skeleton.params) == ("SR_BACKEND_FAILURE", ["Unimplemented", "Volume.resize"])
    typed = failure(xss, "Volume.create", sr=sr, name="d", description="", size="big", sharable=False)
    assert typed.code == "SR_BACKEND_FAILURE" and typed.params[0] == "TypeError"
    absent = failure(xss, "Volume.stat", sr=sr)
    assert absent.params[0] == "UnmarshalException" and "key" in absent.params[1]


def test_smapis_own_volume_errors_match(tmp_path, monkeypatch) -> None:
    """smapi's v3 executables answer a missing volume with the same object the upstream bindings print."""
    from tests.sr.drivers import file_sr_factory

    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    from smapi.rpc.storage_script import install_storage_script

    done = install_storage_script("file", str(tmp_path / "root"), "smapi-file")
    try:
        stored = fork_exec_rpc(done.volume_dir, "SR.create", {"dbg": "t", "uuid": "5e1f", "configuration":
                               sut.device_config, "name": "", "description": ""})
        sr = fork_exec_rpc(done.volume_dir, "SR.attach", {"dbg": "t", "configuration": stored})
        with pytest.raises(StorageScriptError) as caught:
            fork_exec_rpc(done.volume_dir, "Volume.stat", {"dbg": "t", "sr": sr, "key": "nope"})
        assert (caught.value.code, caught.value.params) == ("SR_BACKEND_FAILURE", ["Volume_does_not_exist", "nope"])
        fork_exec_rpc(done.volume_dir, "SR.detach", {"dbg": "t", "sr": sr})
    finally:
        sut.cleanup()
