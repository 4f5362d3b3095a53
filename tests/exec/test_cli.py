"""The `smapi` command line and driver discovery."""

from __future__ import annotations

import json
import sys
import textwrap

from click.testing import CliRunner

from smapi.cli.common import parse_size
from smapi.cli.main import cli
from smapi.core.driver import DriverNotFound, load_driver
from tests.conftest import EXAMPLE_DRIVER


def test_parse_size():
    assert parse_size("4096") == 4096
    assert parse_size("10G") == 10 << 30
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("1.5K") == 1536


def test_sm_query_human_and_json(example_state):
    r = CliRunner().invoke(cli, ["sm-query", "--driver", EXAMPLE_DRIVER])
    assert r.exit_code == 0 and "features:" in r.output
    r = CliRunner().invoke(cli, ["sm-query", "--driver", EXAMPLE_DRIVER, "--json"])
    assert json.loads(r.output)["driver"] == "dirsr"


def test_errors_are_one_line_and_exit_1(example_state):
    r = CliRunner().invoke(cli, ["vdi-create", "--driver", EXAMPLE_DRIVER, "--sr", "nope", "--size", "1G"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == ["error: Sr_not_attached: SR nope is not attached on this host; attach "
                                             "it first (`smapi sr-attach SR`)"]
    r = CliRunner().invoke(cli, ["sm-query", "--driver", "no-such-driver"])
    assert r.exit_code == 1 and "no driver named" in r.output
    r = CliRunner().invoke(cli, ["vdi-create", "--driver", EXAMPLE_DRIVER, "--sr", "x", "--size", "lots"])
    assert r.exit_code == 2 and "not a size" in r.output


def test_plugin_install_command(tmp_path, example_state):
    r = CliRunner().invoke(cli, ["plugin-install", "--driver", EXAMPLE_DRIVER, str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p" / "Plugin.Query").is_symlink()


def test_vendor_driver_found_through_entry_points(tmp_path, monkeypatch):
    """A vendor package registers its driver in the smapi.drivers group; smapi finds it by name."""
    pkg = tmp_path / "acme_sm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from smapi import Driver, Query_skeleton

        class AcmeQuery(Query_skeleton):
            def diagnostics(self, dbg):
                return "acme ok"

        class AcmeDriver(Driver):
            name = "acme"
            storage = {"Query": AcmeQuery}
    """))
    dist = tmp_path / "acme_sm-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-sm\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[smapi.drivers]\nacme = acme_sm:AcmeDriver\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    driver = load_driver("acme")
    assert driver.implementations("storage")["Query"].diagnostics("d") == "acme ok"
    try:
        load_driver("acme-typo")
    except DriverNotFound as e:
        assert "acme" in str(e)
    else:
        raise AssertionError("an unknown driver name must fail")
    sys.modules.pop("acme_sm", None)
