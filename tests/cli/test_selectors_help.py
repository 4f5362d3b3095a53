"""Selectors (UUID, prefix, name, ambiguity), `-h` on every command, man pages, shell completion and the progress
bar on a terminal."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess

import click
import pytest
from click.testing import CliRunner

from smapi.cli.hints import cli_hints
from smapi.cli.main import cli
from smapi.cli.manpages import walk
from smapi.cli.select import match
from tests.cli.conftest import SMAPI

CANDIDATES = [("aaaa1111-0000-0000-0000-000000000000", "web", ""),
              ("aaaa2222-0000-0000-0000-000000000000", "db", "snapshot"),
              ("bbbb3333-0000-0000-0000-000000000000", "db", "")]


def test_match_by_uuid_prefix_and_name():
    assert match("aaaa1111-0000-0000-0000-000000000000", CANDIDATES, "vdi") == CANDIDATES[0][0]
    assert match("aaaa1", CANDIDATES, "vdi") == CANDIDATES[0][0]
    assert match("web", CANDIDATES, "vdi") == CANDIDATES[0][0]
    assert match("bb", CANDIDATES, "vdi") == CANDIDATES[2][0]
    assert match("nothing", CANDIDATES, "vdi") is None
    assert match("", CANDIDATES, "vdi") is None


@pytest.mark.parametrize("selector", ["aaaa", "db"])
def test_ambiguity_lists_the_candidates(selector):
    from smapi.interface.errors import Invalid_argument

    with pytest.raises(Invalid_argument) as e:
        match(selector, CANDIDATES, "vdi")
    text = str(e.value)
    assert "matches 2 VDIs" in text and "give more of the UUID" in text
    found = [u for u, _, _ in CANDIDATES if u in text]
    assert len(found) == 2


def test_a_name_that_is_a_prefix_of_another_uuid_means_the_name():
    cands = [("cafe0000-0000-0000-0000-000000000000", "x", ""), ("11111111-0000-0000-0000-000000000000", "cafe", "")]
    assert match("cafe", cands, "vdi") == cands[1][0]


def test_selectors_end_to_end(shell, tmp_path):
    shell("sr-create", "-d", "file", "-c", f"path={tmp_path}", "--name", "lab")
    a = shell.out("vdi-create", "--sr", "lab", "--size", "1M", "--name", "twin").strip()
    b = shell.out("vdi-create", "--sr", "lab", "--size", "1M", "--name", "twin").strip()
    ambiguous = shell("vdi-stat", "--sr", "lab", "twin", ok=False)
    assert ambiguous.returncode == 1 and a in ambiguous.stderr.decode() and b in ambiguous.stderr.decode()
    prefix = next(a[:n] for n in range(1, 36) if not b.startswith(a[:n]))
    assert json.loads(shell.out("vdi-stat", "--sr", "lab", prefix, "--json"))["vdi"] == a
    shell("vdi-set-name", "--sr", "lab", b, "solo")
    assert json.loads(shell.out("vdi-stat", "--sr", "lab", "solo", "--json"))["vdi"] == b
    missing = shell("vdi-stat", "--sr", "lab", "nope", ok=False)
    assert "Vdi_does_not_exist" in missing.stderr.decode() and "`smapi vdi-list --sr SR`" in missing.stderr.decode()
    assert "SR.scan" not in missing.stderr.decode()
    assert shell.out("vdi-sm-config", "--sr", "lab", "solo", "k=v").splitlines()[0] == "k=v"
    raw = shell.out("vdi-create", "--sr", "lab", "--size", "1M", "--name", "plain", "--format", "raw").strip()
    sm_config = json.loads(shell.out("vdi-stat", "--sr", "lab", raw, "--json"))["sm_config"]
    assert sm_config["vdi_type"] in ("raw", "aio")  # aio: sm's name for it


def _all_command_paths():
    ctx = click.Context(cli, info_name="smapi", **cli.context_settings)
    return [path.split()[1:] for path, _, _ in walk(cli, ctx)]


@pytest.mark.parametrize("path", _all_command_paths(), ids=" ".join)
def test_dash_h_everywhere(path):
    r = CliRunner().invoke(cli, [*path, "-h"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Usage: ")


@pytest.mark.parametrize("script", ["sm-query", "vdi-create"])
def test_dash_h_on_the_standalone_scripts(script):
    exe = SMAPI.parent / script
    if not exe.exists():
        pytest.skip(f"no {script} console script beside the interpreter")
    r = subprocess.run([str(exe), "-h"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"Usage: {script}"), r.stderr


def test_man_pages(tmp_path):
    r = CliRunner().invoke(cli, ["man-pages", str(tmp_path)])
    assert r.exit_code == 0, r.output
    pages = set(os.listdir(tmp_path))
    assert {"smapi.1", "smapi-vdi-create.1", "smapi-sr-attach.1", "smapi-vhd-info.1"} <= pages
    assert len(pages) == len(_all_command_paths()) + 1
    text = (tmp_path / "smapi-sr-attach.1").read_text()
    assert text.startswith('.TH "SMAPI-SR-ATTACH" "1"') and "\\-\\-all" in text.replace("--all", "\\-\\-all")
    if shutil.which("man") is None:
        pytest.skip("man is not installed: the pages were written but not rendered")
    shown = subprocess.run(["man", "-l", str(tmp_path / "smapi-sr-attach.1")], capture_output=True, text=True,
                           env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"}, timeout=60)
    assert shown.returncode == 0 and "sr-attach --all" not in shown.stderr
    assert "every SR of this host's configuration" in " ".join(shown.stdout.split())


def _complete(shell, words):
    env = {"_SMAPI_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    out = shell(env=env)  # `smapi` itself answers completion requests
    return [line.split(",", 1)[1] for line in out.stdout.decode().splitlines() if line]


def test_shell_completion_of_sr_and_vdi_names(shell, tmp_path):
    sr = shell.out("sr-create", "-d", "file", "-c", f"path={tmp_path}", "--name", "lab").strip()
    vdi = shell.out("vdi-create", "--sr", "lab", "--size", "1M", "--name", "web").strip()
    assert _complete(shell, ["smapi", "sr-stat", "la"]) == ["lab"]
    assert sr in _complete(shell, ["smapi", "sr-stat", sr[:4]])
    assert _complete(shell, ["smapi", "vdi-stat", "--sr", "lab", "w"]) == ["web"]
    assert vdi in _complete(shell, ["smapi", "vdi-export", "--sr", "lab", vdi[:3]])
    assert _complete(shell, ["smapi", "vdi-stat", "--sr", "nosuch", "w"]) == []  # no traceback into the shell


def test_progress_bar_on_a_terminal_only(shell, tmp_path):
    shell("sr-create", "-d", "file", "-c", f"path={tmp_path}", "--name", "lab")
    shell("vdi-create", "--sr", "lab", "--size", "4M", "--name", "d")
    piped = shell("vdi-export", "--sr", "lab", "d", str(tmp_path / "a.raw"))
    assert piped.stderr == b""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([str(SMAPI), "vdi-export", "--sr", "lab", "d", str(tmp_path / "b.raw")],
                              stdout=subprocess.PIPE, stderr=follower, env=shell.env, timeout=120)
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    assert b"export" in seen and b"100%" in seen, seen


def test_hints_name_commands():
    commands = {"sr-attach", "vdi-clone", "sr-detach"}
    assert cli_hints("attach it first (SR.attach)", commands) == "attach it first (`smapi sr-attach SR`)"
    assert cli_hints("list the SR's VDIs with SR.scan", commands) == "list the SR's VDIs with `smapi vdi-list --sr SR`"
    assert cli_hints("see VDI.epoch_begin", commands) == "see VDI.epoch_begin"  # no command: left as it is


def test_boot_unit(tmp_path):
    import configparser

    r = CliRunner().invoke(cli, ["host-install-unit", "--dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    unit = tmp_path / "smapi-attach.service"
    assert r.output.strip() == str(unit)
    parsed = configparser.ConfigParser(strict=True)
    parsed.read_string(unit.read_text())
    start = parsed["Service"]["ExecStart"].split()
    assert start[1:] == ["sr-attach", "--all"] and os.access(start[0], os.X_OK)
    assert parsed["Service"]["Type"] == "oneshot" and parsed["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        # --man=no: the man page it points to is not installed in a test run
        check = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                               timeout=60)
        assert check.returncode == 0 and check.stderr == "", check.stderr
