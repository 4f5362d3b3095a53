"""A new administrator's session, through the real `smapi` console script: a file SR made with `-d` once, then
everything by name; a reboot (the run directory emptied); `sr-attach --all` brings everything back."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n\Z")


def _content(size: int) -> bytes:
    block = hashlib.sha256(b"smapi").digest() * (65536 // 32)
    data = bytearray(size)
    data[0:65536] = block
    data[size - 65536:size] = block[::-1]
    return bytes(data)


def test_life_cycle_by_name_and_reboot(shell, tmp_path):
    sr_path = tmp_path / "sr"
    sr_path.mkdir()
    created = shell.out("sr-create", "-d", "file", "-c", f"path={sr_path}", "--name", "lab")
    assert UUID.match(created), created  # only the UUID: S=$(smapi sr-create ...) works
    sr = created.strip()
    record = json.loads((shell.state / "srs" / f"{sr}.json").read_text())
    assert record["driver"] == "file" and record["device_config"] == {"path": str(sr_path)}

    vdi = shell.out("vdi-create", "--sr", "lab", "--size", "4M", "--name", "web")
    assert UUID.match(vdi), vdi
    raw = tmp_path / "web.raw"
    raw.write_bytes(_content(4 << 20))
    imported = shell("vdi-import", "--sr", "lab", "web", str(raw))
    assert imported.stderr == b""  # not a terminal: no progress bar, no stray label
    assert imported.stdout.decode().startswith(f"{4 << 20} bytes")

    snap = shell.out("vdi-snapshot", "--sr", "lab", "web", "--name", "web-snap").strip()
    listing = shell.out("vdi-list", "--sr", "lab")
    assert "web-snap" in listing and "snapshot,ro" in listing, listing
    vdis = {v["name_label"]: v for v in json.loads(shell.out("vdi-list", "--sr", "lab", "--json"))}
    assert vdis["web-snap"]["vdi"] == snap and vdis["web"]["vdi"] == vdi.strip()

    # a snapshot refuses writes, with the command to run instead; its content stays
    other = tmp_path / "other.raw"
    other.write_bytes(b"\xff" * (1 << 20))
    refused = shell("vdi-import", "--sr", "lab", "web-snap", str(other), ok=False)
    assert refused.returncode == 1
    assert "is read-only" in refused.stderr.decode() and "smapi vdi-clone" in refused.stderr.decode()
    out = tmp_path / "snap.raw"
    exported = shell("vdi-export", "--sr", "lab", "web-snap", str(out))
    assert exported.stderr == b"" and out.read_bytes() == raw.read_bytes()

    # reboot: the run directory (a tmpfs) is gone; the host configuration is not
    shell("sr-detach", "--all")
    shutil.rmtree(shell.run_dir, ignore_errors=True)
    not_attached = shell("vdi-list", "--sr", "lab", ok=False)
    assert not_attached.returncode == 1 and "smapi sr-attach SR" in not_attached.stderr.decode()
    assert "no" in shell.out("sr-list").splitlines()[1].split()
    boot = shell.out("sr-attach", "--all")
    assert boot.strip() == f"attached {sr} (lab)"
    row = shell.out("sr-list").splitlines()[1].split()
    assert row == [sr, "lab", "file", str(sr_path), "yes"]
    again = tmp_path / "again.raw"
    shell("vdi-export", "--sr", "lab", "web", str(again))
    assert again.read_bytes() == raw.read_bytes()
    assert {v["vdi"] for v in json.loads(shell.out("vdi-list", "--sr", "lab", "--json"))} == {vdi.strip(), snap}

    shell("vdi-destroy", "--sr", "lab", "web-snap")
    shell("vdi-destroy", "--sr", "lab", "web")
    assert json.loads(shell.out("vdi-list", "--sr", "lab", "--json")) == []

    # forget, then introduce it back (the SR's content stays on disk)
    shell("sr-forget", "lab")
    assert shell.out("sr-list", "--json") == "[]\n"
    assert "sr-introduce" in shell("vdi-list", "--sr", "lab", ok=False).stderr.decode()
    assert shell.out("sr-introduce", "-d", "file", "-c", f"path={sr_path}", "--name", "lab", sr).strip() == sr
    shell("sr-destroy", "--yes", sr[:8])
    assert shell.out("sr-list", "--json") == "[]\n"
    assert not os.listdir(shell.state / "srs")


def test_wrong_driver_is_named(shell, tmp_path):
    shell("sr-create", "-d", "file", "-c", f"path={tmp_path}", "--name", "lab")
    wrong = shell("vdi-list", "-d", "lvm", "--sr", "lab", ok=False)
    assert wrong.returncode == 1
    assert "uses driver 'file', not 'lvm'" in wrong.stderr.decode() and "BACKEND_FAILURE" not in wrong.stderr.decode()
    assert shell("vdi-list", "-d", "file", "--sr", "lab").returncode == 0  # the right one is accepted


def test_streaming_through_dash(shell, tmp_path):
    shell("sr-create", "-d", "file", "-c", f"path={tmp_path}", "--name", "lab")
    shell("vdi-create", "--sr", "lab", "--size", "2M", "--name", "d")
    data = _content(2 << 20)
    streamed = shell("vdi-import", "--sr", "lab", "d", "-", stdin=data)
    assert streamed.stdout.decode().startswith(f"{2 << 20} bytes")
    exported = shell("vdi-export", "--sr", "lab", "d", "-")
    assert exported.stdout == data  # stdout carries only the disk
    assert exported.stderr.decode().startswith(f"{2 << 20} bytes")  # the summary goes to stderr
    vhd = shell("vdi-export", "--sr", "lab", "--format", "vhd", "d", "-").stdout
    assert vhd[-512:][:8] == b"conectix"  # a VHD footer closes the stream
    assert not (tmp_path / "-").exists()


def test_connection_error_names_the_address(shell):
    r = shell("vdi-list", "--url", "http://127.0.0.1:9", "--sr", "x", ok=False)
    assert r.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in r.stderr.decode() and "Errno" not in r.stderr.decode()


def test_url_on_data_and_gc_commands(shell, tmp_path):
    """--url: names resolve on the server; vdi-export and sr-gc (host-local work) use the SR attached here."""
    import subprocess
    import time

    from tests.cli.conftest import SMAPI

    (tmp_path / "sr").mkdir()
    shell("sr-create", "-d", "file", "-c", f"path={tmp_path / 'sr'}", "--name", "lab2")
    shell("vdi-create", "--sr", "lab2", "--size", "1M", "--name", "d")
    sock = tmp_path / "s.sock"
    server = subprocess.Popen([str(SMAPI), "serve", "--driver", "file", "--unix", str(sock)], env=shell.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        url = f"xmlrpc+unix://{sock}"
        assert "lab2" in shell.out("sr-list", "--url", url)
        assert json.loads(shell.out("vdi-list", "--url", url, "--sr", "lab2", "--json"))[0]["name_label"] == "d"
        assert shell("vdi-export", "--url", url, "--sr", "lab2", "d", "-").stdout == bytes(1 << 20)
        assert set(json.loads(shell.out("sr-gc", "--url", url, "lab2", "--json"))) >= {"deleted", "coalesced"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_attach_all_tries_every_sr_and_reports_the_failures(shell, tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "gone").mkdir()
    good = shell.out("sr-create", "-d", "file", "-c", f"path={tmp_path / 'good'}", "--name", "good").strip()
    gone = shell.out("sr-create", "-d", "file", "-c", f"path={tmp_path / 'gone'}", "--name", "gone").strip()
    shell("sr-detach", "--all")
    shutil.rmtree(shell.run_dir)
    shutil.rmtree(tmp_path / "gone")  # its storage vanished while the host was down
    boot = shell("sr-attach", "--all", ok=False)
    assert boot.returncode == 1
    assert boot.stdout.decode().strip() == f"attached {good} (good)"
    assert boot.stderr.decode().startswith(f"error: {gone} (gone): ")
    rows = {line.split()[1]: line.split()[-1] for line in shell.out("sr-list").splitlines()[1:]}
    assert rows == {"good": "yes", "gone": "no"}
