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


OWNER = "sr:test"


@pytest.fixture
def leaf(scratch) -> str:
    return make_chain(scratch, 8 * MiB, depth=2)[0]


def test_server_outlives_its_caller_and_stops_from_another_process(leaf, run_dir):
    res = _in_child(f"""
        from smapi import datapath
        ex = datapath.start("v", datapath.ImageSpec("vhd", {leaf!r}), readonly=False, owner={OWNER!r},
                            run_dir={run_dir!r})
        print(ex.uri)
    """)
    assert res.returncode == 0, res.stderr
    uri = res.stdout.strip()
    pid = datapath.server("v", run_dir=run_dir).pid
    # Not in our session: no signal aimed at the caller's terminal or process group reaches it.
    assert procs.running(pid) and os.getsid(pid) != os.getsid(0) and os.getpgid(pid) != os.getpgid(0)
    qemu_io(uri, "write -P 0x31 0 64k")  # the caller is gone; the disk is still there
    # Stopped by this process, which is not its parent, through the record alone.
    assert datapath.stop("v", owner=OWNER, run_dir=run_dir)
    assert not procs.running(pid)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_stop_from_another_process_of_a_server_this_process_started(leaf, run_dir):
    datapath.start("v", ImageSpec("vhd", leaf), readonly=True, owner=OWNER, run_dir=run_dir)
    pid = datapath.server("v", run_dir=run_dir).pid
    res = _in_child(f"""
        from smapi import datapath
        assert datapath.stop("v", owner={OWNER!r}, run_dir={run_dir!r})
    """)
    assert res.returncode == 0, res.stderr
    assert not procs.running(pid)  # and reaped: the session check finds no nbdkit child of pytest


def test_concurrent_starts_share_one_server(leaf, run_dir):
    code = f"""
        from smapi import datapath
        datapath.start("v", datapath.ImageSpec("vhd", {leaf!r}), readonly=False, owner={OWNER!r}, run_dir={run_dir!r})
    """
    kids = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO) for _ in range(3)]
    assert [k.wait(timeout=60) for k in kids] == [0, 0, 0]
    ex = datapath.server("v", run_dir=run_dir)
    assert ex is not None and ex.running()
    assert len(NbdServer(run_dir).exports()) == 1
    datapath.stop("v", owner=OWNER, run_dir=run_dir)
    assert not procs.running(ex.pid)


def _killed_after(code: str) -> None:
    """Run ``code`` in a child that then dies by SIGKILL (no cleanup of any kind)."""
    res = _in_child(textwrap.dedent(code) + "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert res.returncode == -signal.SIGKILL, res.stderr


def test_killed_caller_live_server_survives_cleanup(leaf, run_dir):
    # A caller killed after starting a server: the server is live and must stay so (its owner decides).
    _killed_after(f"""
        from smapi import datapath
        datapath.start("v", datapath.ImageSpec("vhd", {leaf!r}), readonly=False, owner={OWNER!r}, run_dir={run_dir!r})
    """)
    assert datapath.cleanup_stale(run_dir) == []
    ex = datapath.server("v", run_dir=run_dir)
    assert ex is not None and ex.running()
    # nbd.cleanup_stale is the blunt tool: everything recorded goes.
    assert nbd_cleanup_stale(run_dir) == ["v"]
    assert not procs.running(ex.pid) and os.listdir(os.path.join(run_dir, "nbd")) == []
    assert not datapath.stop("v", owner=OWNER, run_dir=run_dir)  # nothing left; never fails


def test_dead_server_record_is_cleaned(leaf, run_dir):
    datapath.start("v", ImageSpec("vhd", leaf), readonly=True, owner=OWNER, run_dir=run_dir)
    ex = datapath.server("v", run_dir=run_dir)
    procs.terminate(ex.pid)
    assert datapath.served(run_dir) == ["v"] and not datapath.serving("v", owner=OWNER, run_dir=run_dir)
    assert datapath.cleanup_stale(run_dir) == ["v"]
    assert datapath.served(run_dir) == [] and os.listdir(os.path.join(run_dir, "nbd")) == []


def test_host_restart_state_is_cleaned_at_start(leaf, run_dir, monkeypatch):
    _killed_after(f"""
        from smapi import datapath
        datapath.start("v", datapath.ImageSpec("vhd", {leaf!r}), readonly=True, owner={OWNER!r}, run_dir={run_dir!r})
    """)
    old = datapath.server("v", run_dir=run_dir)
    # A restart: processes are gone, files (if the run dir is not a tmpfs) remain, the boot id changes.
    os.kill(old.pid, signal.SIGKILL)
    while procs.running(old.pid):
        time.sleep(0.01)
    assert os.path.exists(old.socket)
    monkeypatch.setattr(runtime, "boot_id", lambda: "another-boot")
    # The old server was RO; the new boot may serve RW: nothing of the old state is trusted.
    res = datapath.start("v", ImageSpec("vhd", leaf), readonly=False, owner=OWNER, run_dir=run_dir)
    assert res.pid != old.pid and not res.readonly
    qemu_io(res.uri, "write -P 0x66 0 4096")
    datapath.stop("v", owner=OWNER, run_dir=run_dir)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_recorded_pid_of_another_program_is_never_signalled(leaf, run_dir, monkeypatch):
    datapath.start("v", ImageSpec("vhd", leaf), readonly=True, owner=OWNER, run_dir=run_dir)
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
        assert datapath.cleanup_stale(run_dir) == ["v"]
        runtime.write_json(os.path.join(run_dir, "nbd", "v.json"), forged | {"boot_id": "old"})
        assert not datapath.stop("v", owner=OWNER, run_dir=run_dir)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert os.listdir(os.path.join(run_dir, "nbd")) == []
