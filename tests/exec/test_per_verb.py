"""Per-verb executables, run for real as xapi-storage-script runs them: `<dir>/SR.create --json`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from smapi.rpc.plugin_dir import install_plugin
from tests.conftest import EXAMPLE_DRIVER


@pytest.fixture
def plugin_dirs(tmp_path, example_state):
    v3 = tmp_path / "v3"
    storage = tmp_path / "storage"
    install_plugin(EXAMPLE_DRIVER, str(v3))
    install_plugin(EXAMPLE_DRIVER, str(storage), api="storage")
    return v3, storage


def call(directory, verb, args=None, raw=None, extra=()):
    stdin = raw if raw is not None else json.dumps(args) + "\n"
    p = subprocess.run([str(directory / verb), "--json", *extra], input=stdin, capture_output=True, text=True,
                       timeout=60, env=os.environ.copy())
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def test_install_writes_one_link_per_verb(plugin_dirs):
    v3, storage = plugin_dirs
    names = set(os.listdir(v3))
    assert {"Plugin.Query", "SR.create", "Volume.snapshot", "Datapath.attach", "smapi-dispatch"} <= names
    assert os.readlink(v3 / "Volume.snapshot") == "smapi-dispatch"
    assert {"VDI.create", "SR.scan", "Query.query"} <= set(os.listdir(storage))


def test_plugin_query(plugin_dirs):
    v3, _ = plugin_dirs
    rc, out, _ = call(v3, "Plugin.Query", {"dbg": "t"})
    assert rc == 0
    assert out["plugin"] == "dirsr" and out["required_cluster_stack"] == []


def test_storage_verbs_end_to_end(plugin_dirs, sr_dir):
    _, d = plugin_dirs
    assert call(d, "SR.create", {"dbg": "t", "sr": "s1", "device_config": {"path": sr_dir}, "physical_size": 0})[0] == 0
    assert call(d, "SR.attach", {"dbg": "t", "sr": "s1", "device_config": {"path": sr_dir}})[:2] == (0, None)
    rc, vdi, _ = call(d, "VDI.create", {"dbg": "t", "sr": "s1", "vdi_info": {"virtual_size": 1000, "name_label": "a"}})
    assert rc == 0 and vdi["virtual_size"] == 1024 and vdi["name_label"] == "a"
    rc, listed, _ = call(d, "SR.scan", {"dbg": "t", "sr": "s1"})
    assert rc == 0 and [v["vdi"] for v in listed] == [vdi["vdi"]]
    assert call(d, "VDI.stat", {"dbg": "t", "sr": "s1", "vdi": vdi["vdi"]})[1] == vdi


def test_typed_failures_follow_the_v3_convention(plugin_dirs):
    v3, d = plugin_dirs
    rc, out, _ = call(v3, "Volume.compare", {"dbg": "t", "sr": "s", "key": "k", "key2": "k2"})
    assert rc == 1 and out["code"] == "SR_BACKEND_FAILURE"
    assert out["params"] == ["Unimplemented", "Volume.compare"]
    assert set(out["backtrace"]) == {"error", "files", "lines"}
    rc, out, _ = call(d, "VDI.stat", {"dbg": "t", "sr": "unknown", "vdi": "v"})
    assert rc == 1 and out["params"] == ["Sr_not_attached", "unknown"]


@pytest.mark.parametrize("stdin,expected", [
    ("not json\n", "Bad_request"),
    ("[1, 2]\n", "Bad_request"),
    ("", "Bad_request"),
    ('{"dbg": "t"}\n', "Invalid_argument"),
    ('{"dbg": "t", "sr": 5, "vdi": "v"}\n', "Invalid_argument"),
])
def test_bad_input_is_a_typed_error(plugin_dirs, stdin, expected):
    _, d = plugin_dirs
    rc, out, _ = call(d, "VDI.stat", raw=stdin)
    assert rc == 1 and out["params"][0] == expected


def test_unknown_verb_name(plugin_dirs, tmp_path):
    v3, _ = plugin_dirs
    os.symlink("smapi-dispatch", v3 / "Volume.frobnicate")
    rc, out, _ = call(v3, "Volume.frobnicate", {"dbg": "t"})
    assert rc == 1 and out["params"][0] == "Unknown_method"


def test_positional_form_for_people(plugin_dirs, sr_dir):
    _, d = plugin_dirs
    p = subprocess.run([str(d / "SR.create"), "t", "s2", "0", "--device_config", "path", sr_dir],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(sr_dir, "sr.json"))
    p = subprocess.run([str(d / "VDI.stat"), "t", "s2", "v"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith("Sr_not_attached")


def test_v3_verbs_served_on_top_of_the_storage_interface(plugin_dirs, sr_dir):
    """A storage-interface driver answers SMAPIv3 executables through the adapter, as xapi-storage-script calls."""
    v3, _ = plugin_dirs
    rc, config, err = call(v3, "SR.create", {"dbg": "t", "uuid": "s3", "configuration": {"path": sr_dir},
                                             "name": "", "description": ""})
    assert rc == 0, err
    assert config == {"path": sr_dir, "sr_uuid": "s3"}
    rc, sr, _ = call(v3, "SR.attach", {"dbg": "t", "configuration": config})
    assert (rc, sr) == (0, "s3")
    rc, vol, err = call(v3, "Volume.create", {"dbg": "t", "sr": sr, "name": "v", "description": "d",
                                              "size": 4096, "sharable": False})
    assert rc == 0, err
    assert vol["name"] == "v" and vol["virtual_size"] == 4096 and vol["uri"] == [f"smapi://s3/{vol['key']}"]
    rc, listed, _ = call(v3, "SR.ls", {"dbg": "t", "sr": sr})
    assert rc == 0 and listed == [vol]
    assert call(v3, "Volume.stat", {"dbg": "t", "sr": sr, "key": vol["key"]})[1] == vol
    rc, out, _ = call(v3, "Volume.snapshot", {"dbg": "t", "sr": sr, "key": vol["key"]})
    assert rc == 1 and out["params"] == ["Unimplemented", "VDI.snapshot"]
    rc, out, _ = call(v3, "Volume.stat", {"dbg": "t", "sr": sr, "key": "nope"})
    assert rc == 1 and out["params"] == ["Volume_does_not_exist", "nope"]  # the v3 IDL's name
    rc, out, _ = call(v3, "SR.attach", {"dbg": "t", "configuration": {"path": sr_dir}})
    assert rc == 1 and out["params"] == ["Missing_configuration_parameter", "sr_uuid"]
    rc, q, _ = call(v3, "Plugin.Query", {"dbg": "t"})
    assert rc == 0 and q["plugin"] == "dirsr"
