"""smapi.testing without a full run: configs, declared features, the command's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smapi.cli.main import cli
from smapi.testing.features import skip_reason
from smapi.testing.sut import config_factory, factory_from_environment, parse_config


def test_config_placeholders_give_each_test_its_own_sr(tmp_path: Path) -> None:
    factory = config_factory("tinysr", parse_config('{"path": "{tmp}/sr", "mode": "x"}'), "tinysr")
    a, b = factory(tmp_path / "a"), factory(tmp_path / "b")
    assert a.device_config == {"path": f"{tmp_path}/a/sr", "mode": "x"}
    assert b.device_config["path"] == f"{tmp_path}/b/sr"
    assert a.env["SMAPI_RUN_DIR"] == f"{tmp_path}/a/run" and a.env["SMAPI_GC"] == "sync"
    assert parse_config(None) == {"path": "{tmp}/sr"}


@pytest.mark.parametrize("text, why", [
    ("{not json", "not JSON"),
    ('["path"]', "JSON object"),
    ('{"path": 3}', "must be a string"),
])
def test_bad_configs_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_config(text)


def test_skip_reasons_name_what_the_driver_lacks() -> None:
    assert skip_reason("tinysr", ["VDI_SNAPSHOT", "VDI_RESET_ON_BOOT", "open_vdi", "gc"]) is None
    assert skip_reason("dirsr", ["VDI_CREATE", "open_vdi"]) is None
    assert skip_reason("dirsr", ["VDI_SNAPSHOT", "VDI_CLONE", "gc"]) == (
        "the driver does not declare VDI_CLONE, VDI_SNAPSHOT; the driver offers no gc() hook")


def test_the_environment_names_the_driver_for_xdist_workers() -> None:
    name, factory = factory_from_environment(json.dumps({"driver": "smapi.examples.tinysr:TinySR"}))
    assert name == "tinysr" and callable(factory)


@pytest.mark.parametrize("args, message", [
    (["--driver", "no-such-driver"], "no driver named 'no-such-driver'"),
    (["--driver", "tinysr", "--config", "{oops"], "--config is not JSON"),
    (["--driver", "tinysr", "--config", "{}", "--factory", "m:f"], "not both"),
])
def test_the_command_refuses_bad_options_in_one_line(args: list, message: str) -> None:
    result = CliRunner().invoke(cli, ["conformance", *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
