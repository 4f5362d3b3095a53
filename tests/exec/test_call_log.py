"""The call log as xapi would leave it: per-verb executables run for real, one line per call naming its dbg."""

from __future__ import annotations

import json
import os
import re
import subprocess
import xmlrpc.client
from pathlib import Path
from typing import Any, Dict, List

import pytest

from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.rpc.plugin_dir import install_plugin
from tests.conftest import EXAMPLE_DRIVER
from tests.sr.drivers import file_sr_factory

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r'^\S+Z \S+ smapi\[\d+\] call (?P<verb>\S+) dbg=(?P<dbg>-|"[^"]*") [\d.]+ms (?P<outcome>\S+)$')


@pytest.fixture
def log_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "log" / "smapi.log"
    monkeypatch.setenv("SMAPI_LOG_FILE", str(path))
    monkeypatch.delenv("SMAPI_LOG", raising=False)
    return path


def lines_of(log_file: Path) -> List[Dict[str, str]]:
    text = log_file.read_text() if log_file.exists() else ""
    parsed = [LINE.match(line) for line in text.splitlines()]
    assert all(parsed), text  # every line is a whole call line
    return [m.groupdict() for m in parsed if m]


def run(directory: Path, verb: str, args: Dict[str, Any]) -> Any:
    p = subprocess.run([str(directory / verb), "--json"], input=json.dumps(args) + "\n", capture_output=True,
                       text=True, timeout=60, env=os.environ.copy())
    return p.returncode, json.loads(p.stdout)


def test_each_per_verb_run_leaves_one_line_naming_its_dbg(tmp_path, monkeypatch, log_file):
    # The file SR's v3 executables run through the SMAPIv3-on-storage adapter, which makes storage calls of its
    # own (SR.create then SR.attach, set_name_label, SR.detach...): those belong to the caller's call and must not
    # add lines of their own.
    sut = file_sr_factory(tmp_path)
    for name, value in sut.env.items():
        monkeypatch.setenv(name, value)
    plugin = tmp_path / "v3"
    install_plugin(sut.driver_spec, str(plugin))
    rc, config = run(plugin, "SR.create", {"dbg": "op-1", "uuid": "s1", "configuration": sut.device_config,
                                           "name": "named", "description": ""})
    assert rc == 0, config
    rc, sr = run(plugin, "SR.attach", {"dbg": "op-2", "configuration": config})
    assert rc == 0, sr
    rc, volume = run(plugin, "Volume.create", {"dbg": "op-3", "sr": sr, "name": "v", "description": "",
                                               "size": 1 << 20, "sharable": False})
    assert rc == 0, volume
    assert run(plugin, "Volume.snapshot", {"dbg": "op-4", "sr": sr, "key": volume["key"]})[0] == 0
    rc, failure = run(plugin, "Volume.stat", {"dbg": "op-5", "sr": sr, "key": "no-such-volume"})
    assert rc == 1 and failure["params"][0] == "Volume_does_not_exist"
    assert run(plugin, "SR.detach", {"dbg": "op-6", "sr": sr})[0] == 0
    assert run(plugin, "Plugin.Query", {"dbg": "op-7"})[0] == 0

    got = [(line["verb"], line["dbg"], line["outcome"]) for line in lines_of(log_file)]
    assert got == [
        ("SR.create", '"op-1"', "ok"),
        ("SR.attach", '"op-2"', "ok"),
        ("Volume.create", '"op-3"', "ok"),
        ("Volume.snapshot", '"op-4"', "ok"),
        ("Volume.stat", '"op-5"', "Volume_does_not_exist"),
        ("SR.detach", '"op-6"', "ok"),
        ("Plugin.query", '"op-7"', "ok"),
    ]


def test_a_failed_call_logs_its_error_code(tmp_path, example_state, sr_dir, log_file):
    plugin = tmp_path / "storage"
    install_plugin(EXAMPLE_DRIVER, str(plugin), api="storage")
    rc, failure = run(plugin, "SR.attach", {"dbg": "where is it", "sr": "s1", "device_config": {"path": sr_dir}})
    assert rc == 1
    backend_code = f"SR_BACKEND_FAILURE_{CLASSIC_CODES['SRUnavailable'][0]}"  # the classic code xapi shows
    assert failure["code"] == backend_code
    rc, _ = run(plugin, "VDI.stat", {"dbg": "and this", "sr": "s1", "vdi": "v"})
    assert rc == 1
    rc, _ = run(plugin, "VDI.stat", {"dbg": 7, "sr": "s1", "vdi": "v"})  # a mistyped dbg is still logged
    assert rc == 1
    got = [(line["verb"], line["dbg"], line["outcome"]) for line in lines_of(log_file)]
    assert got == [("SR.attach", '"where is it"', backend_code), ("VDI.stat", '"and this"', "Sr_not_attached"),
                   ("VDI.stat", '"7"', "Invalid_argument")]


def test_a_classic_command_logs_its_storage_verbs_under_the_task(tmp_path, example_state, sr_dir, log_file):
    struct = {"host_ref": "OpaqueRef:h", "command": "sr_create", "args": ["0"], "sr_uuid": "s1",
              "device_config": {"path": sr_dir}, "subtask_of": "OpaqueRef:task-9"}
    out = subprocess.run([str(REPO / "bin" / "DirSR"), xmlrpc.client.dumps((struct,), "sr_create")],
                         capture_output=True, text=True, timeout=60, env=os.environ.copy()).stdout
    assert xmlrpc.client.loads(out)[0][0] is None
    (line,) = lines_of(log_file)
    assert (line["verb"], line["dbg"], line["outcome"]) == ("SR.create", '"OpaqueRef:task-9"', "ok")
