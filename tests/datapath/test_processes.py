"""Server processes across caller processes: they outlive the verb that started them, are stopped from another
process through their record, survive a killed caller, and stale state is cleaned (pids checked first)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from smapi import datapath
from smapi.datapath import ImageSpec, NbdServer, procs, runtime
from smapi.datapath.nbd import cleanup_stale as nbd_cleanup_stale

from .dptestlib import MiB, make_chain, qemu_io

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _in_child(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this virtualenv (a per-verb executable's life, in short)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def leaf(scratch) -> str:
    return make_chain(scratch, 8 * MiB, depth=2)[0]


def test_server_outlives_its_caller_and_stops_from_another_process(leaf, run_dir):
    res = _in_child(f"""
        from smapi import datapath
        r = datapath.attach("v", datapath.ImageSpec("vhd", {leaf!r}), dp="dp1", readonly=False, run_dir={run_dir!r})
        datapath.activate("v", dp="dp1", run_dir={run_dir!r})
        print(r.nbd_uri)
    """)
    assert res.returncode == 0, res.stderr
    uri = res.stdout.strip()
    pid = datapath.stat("v", run_dir=run_dir)["server"]["pid"]
    # Not in our session: no signal aimed at the caller's terminal or process group reaches it.
    assert procs.running(pid) and os.getsid(pid) != os.getsid(0) and os.getpgid(pid) != os.getpgid(0)
    qemu_io(uri, "write -P 0x31 0 64k")  # the caller is gone; the disk is still there
    # Stopped by this process, which is not its parent, through the record alone.
    datapath.deactivate("v", dp="dp1", run_dir=run_dir)
    datapath.detach("v", dp="dp1", run_dir=run_dir)
    assert not procs.running(pid)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_stop_from_another_process_of_a_server_this_process_started(leaf, run_dir):
    datapath.attach("v", ImageSpec("vhd", leaf), dp="dp1", readonly=True, run_dir=run_dir)
    pid = datapath.stat("v", run_dir=run_dir)["server"]["pid"]
    res = _in_child(f"""
        from smapi import datapath
        datapath.detach("v", dp="dp1", run_dir={run_dir!r})
    """)
    assert res.returncode == 0, res.stderr
    assert not procs.running(pid)  # and reaped: the session check finds no nbdkit child of pytest


def test_concurrent_attaches_share_one_server(leaf, run_dir):
    code = f"""
        import sys
        from smapi import datapath
        datapath.attach("v", datapath.ImageSpec("vhd", {leaf!r}), dp=sys.argv[1], readonly=False,
                        run_dir={run_dir!r})
    """
    kids = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), f"dp{i}"], cwd=REPO) for i in range(3)]
    assert [k.wait(timeout=60) for k in kids] == [0, 0, 0]
    st = datapath.stat("v", run_dir=run_dir)
    assert sorted(st["dps"]) == ["dp0", "dp1", "dp2"] and st["server"]["running"]
    assert len(NbdServer(run_dir).exports()) == 1
    for i in range(3):
        datapath.detach("v", dp=f"dp{i}", run_dir=run_dir)
    assert not procs.running(st["server"]["pid"])


def _killed_after(code: str) -> None:
    """Run ``code`` in a child that then dies by SIGKILL (no cleanup of any kind)."""
    res = _in_child(textwrap.dedent(code) + "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert res.returncode == -signal.SIGKILL, res.stderr


def test_killed_caller_orphan_server_is_cleaned(leaf, run_dir):
    # The caller dies between starting the server and recording the datapath.
    _killed_after(f"""
        from smapi.datapath import ImageSpec, NbdServer
        NbdServer({run_dir!r}).start("v", ImageSpec("vhd", {leaf!r}), readonly=False)
    """)
    rec = NbdServer(run_dir).get("v")
    assert rec is not None and rec.running()
    assert datapath.cleanup_stale(run_dir) == ["v"]
    assert not procs.running(rec.pid)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_killed_caller_live_datapath_survives_cleanup(leaf, run_dir):
    # A caller killed after a complete attach: the datapath is live and must stay so.
    _killed_after(f"""
        from smapi import datapath
        datapath.attach("v", datapath.ImageSpec("vhd", {leaf!r}), dp="dp1", readonly=False, run_dir={run_dir!r})
    """)
    assert datapath.cleanup_stale(run_dir) == []
    st = datapath.stat("v", run_dir=run_dir)
    assert st["server"]["running"]
    # nbd.cleanup_stale is the blunt tool: everything recorded goes.
    assert nbd_cleanup_stale(run_dir) == ["v"]
    assert not procs.running(st["server"]["pid"]) and os.listdir(os.path.join(run_dir, "nbd")) == []
    datapath.detach("v", dp="dp1", run_dir=run_dir)  # the record goes too; never fails


def test_host_restart_state_is_cleaned_at_attach(leaf, run_dir, monkeypatch):
    _killed_after(f"""
        from smapi import datapath
        datapath.attach("v", datapath.ImageSpec("vhd", {leaf!r}), dp="old", readonly=True, run_dir={run_dir!r})
    """)
    old = datapath.stat("v", run_dir=run_dir)["server"]
    # A restart: processes are gone, files (if the run dir is not a tmpfs) remain, the boot id changes.
    os.kill(old["pid"], signal.SIGKILL)
    while procs.running(old["pid"]):
        time.sleep(0.01)
    assert os.path.exists(old["socket"])
    monkeypatch.setattr(runtime, "boot_id", lambda: "another-boot")
    # The old record was RO; the new boot may attach RW: nothing of the old state is trusted.
    res = datapath.attach("v", ImageSpec("vhd", leaf), dp="new", readonly=False, run_dir=run_dir)
    st = datapath.stat("v", run_dir=run_dir)
    assert st["dps"] == {"new": "Attached(RW)"} and st["server"]["pid"] != old["pid"]
    qemu_io(res.nbd_uri, "write -P 0x66 0 4096")
    datapath.detach("v", dp="new", run_dir=run_dir)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_recorded_pid_of_another_program_is_never_signalled(leaf, run_dir, monkeypatch):
    datapath.attach("v", ImageSpec("vhd", leaf), dp="dp1", readonly=True, run_dir=run_dir)
    server = NbdServer(run_dir)
    rec = server.get("v")
    procs.terminate(rec.pid)  # the server died ...
    sleeper = subprocess.Popen(["sleep", "30"])  # ... and its pid now belongs to something else
    try:
        forged = rec.to_json() | {"pid": sleeper.pid}
        runtime.write_json(os.path.join(run_dir, "nbd", "v.json"), forged)
        assert not server.get("v").running()
        assert nbd_cleanup_stale(run_dir) == ["v"]
        # Same with a record from another boot that happens to name a live pid.
        runtime.write_json(os.path.join(run_dir, "nbd", "v.json"), forged | {"boot_id": "old"})
        datapath.detach("v", dp="dp1", run_dir=run_dir)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert os.listdir(os.path.join(run_dir, "nbd")) == []
