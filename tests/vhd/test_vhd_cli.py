"""The `vhd` click group: happy paths, --json, sizes, and one-line errors with a non-zero exit."""

import json

import pytest
from click.testing import CliRunner

from smapi.cli.vhd import parse_size, vhd


@pytest.mark.parametrize("text,value", [("4096", 4096), ("10G", 10 << 30), ("512M", 512 << 20), ("2GiB", 2 << 30),
                                        ("1.5T", 3 << 39), ("64k", 64 << 10)])
def test_parse_size(text, value):
    assert parse_size(text) == value


def run(*args, ok=True):
    res = CliRunner().invoke(vhd, list(map(str, args)))
    assert (res.exit_code == 0) == ok, res.output
    assert "Traceback" not in res.output
    return res.output


def test_cli_round_trip(tmp_path):
    raw = tmp_path / "in.raw"
    raw.write_bytes(b"\x01" * 3 * 2**20 + bytes(2**20))
    a, b = tmp_path / "a.vhd", tmp_path / "b.vhd"
    assert json.loads(run("import", raw, a, "--json"))["allocated_blocks"] == 2
    run("snapshot", a, b)
    inf = json.loads(run("info", b, "--json"))
    assert inf["disk_type"] == "differencing" and inf["parent_name"] == "a.vhd"
    assert "is valid" in run("check", b)
    assert json.loads(run("coalesce", b, "--json"))["coalesced_sectors"] == 0
    assert json.loads(run("resize", a, "8M", "--json"))["virtual_size"] == 8 << 20
    out = tmp_path / "out.raw"
    run("export", a, out)
    assert out.read_bytes()[: 4 << 20] == raw.read_bytes()
    flat = tmp_path / "flat.vhd"  # the child's chain as one dynamic VHD, through the VHD view
    res = json.loads(run("export", b, flat, "--format", "vhd", "--json"))
    assert res["allocated_blocks"] == 2 and json.loads(run("info", flat, "--json"))["disk_type"] == "dynamic"
    out2 = tmp_path / "out2.raw"
    run("export", flat, out2)
    assert out2.read_bytes()[: 4 << 20] == raw.read_bytes()
    run("create", tmp_path / "c.vhd", "10G")
    assert "capacity=10737418240" in run("scan", tmp_path)
    run("hidden", a, "on")
    assert json.loads(run("info", a, "--json"))["hidden"] is True
    assert "nothing to repair" in run("repair", a)


def test_cli_errors_are_one_line(tmp_path):
    junk = tmp_path / "junk.vhd"
    junk.write_bytes(b"\0" * 4096)
    out = run("info", junk, ok=False)
    assert out.strip().count("\n") == 0 and out.startswith("error:") and "footer" in out
    out = run("create", tmp_path / "x.vhd", "3000G", ok=False)
    assert "2040 GiB" in out
    run("create", tmp_path / "y.vhd", "1G")
    assert "already exists" in run("create", tmp_path / "y.vhd", "1G", ok=False)
    assert "invalid" in run("check", junk, ok=False)
    assert "not a size" in run("create", tmp_path / "z.vhd", "lots", ok=False)
