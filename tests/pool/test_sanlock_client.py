"""The ctypes binding against real sanlock daemons, one per simulated host (smapi.sr.sanlock.client)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from smapi.sr.sanlock import client, daemon
from tests.pool.conftest import SimHost
from tests.pool.hostproc import REPO, RemoteError

SETUP = """
from smapi.sr.sanlock import client as c
ls_area = c.Area(ls_path)
res_area = c.Area(res_path, res_offset)
"""


def _pool(tmp_path: Path, hosts: List[SimHost]) -> dict:
    """A lockspace file and a resource at byte offset 1 MiB of another file, joined by every host."""
    names = {"ls_path": str(tmp_path / "lockspace"), "res_path": str(tmp_path / "leases"),
             "res_offset": client.LEASE_SIZE}
    first = hosts[0].process()
    first.run(SETUP + """
c.prepare_file(ls_path); c.write_lockspace("pool", ls_area)
c.prepare_file(res_path, 2 * c.LEASE_SIZE); c.write_resource("pool", "sr", res_area)
""", **names)
    for i, host in enumerate(hosts, 1):
        p = first if i == 1 else host.process()
        p.run(SETUP + "c.add_lockspace('pool', host_id, ls_area)", host_id=i, **names)
    return names


def test_two_hosts_see_each_other_live_in_the_lockspace(make_hosts, tmp_path: Path) -> None:
    a, b = make_hosts(2)
    names = _pool(tmp_path, [a, b])
    pa = a.process()
    live = pa.run(SETUP + "result = sorted(c.live_hosts('pool'))", **names)
    assert live == [1, 2]
    assert pa.run(SETUP + "result = c.joined('pool', 1, ls_area)", **names) is True
    pa.run(SETUP + "c.rem_lockspace('pool', 1, ls_area)", **names)
    assert pa.run(SETUP + "result = c.joined('pool', 1, ls_area)", **names) is False


def test_exclusive_and_shared_leases_contend_across_hosts(make_hosts, tmp_path: Path) -> None:
    a, b = make_hosts(2)
    names = _pool(tmp_path, [a, b])
    pa, pb = a.process(), b.process()
    pa.run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)
    with pytest.raises(RemoteError) as busy:
        pb.run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)
    assert busy.value.kind == "SanlockError"
    with pytest.raises(RemoteError):
        pb.run(SETUP + "c.acquire('pool', 'sr', res_area, shared=True)", **names)
    owners = pb.run(SETUP + "o = c.owners('pool', 'sr', res_area); result = [o.lver, [h.host_id for h in o.hosts]]",
                    **names)
    assert owners[1] == [1]
    pa.run(SETUP + "c.release('pool', 'sr', res_area)", **names)
    # shared on both hosts at once; then nobody gets it exclusively
    pa.run(SETUP + "c.acquire('pool', 'sr', res_area, shared=True)", **names)
    pb.run(SETUP + "c.acquire('pool', 'sr', res_area, shared=True)", **names)
    with pytest.raises(RemoteError):
        a.process().run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)


def test_every_exclusive_acquisition_raises_the_lease_version(make_hosts, tmp_path: Path) -> None:
    a, b = make_hosts(2)
    names = _pool(tmp_path, [a, b])
    take = SETUP + "c.acquire('pool', 'sr', res_area); result = c.lease_version('pool', 'sr', res_area)"
    give = SETUP + "c.release('pool', 'sr', res_area)"
    pa, pb = a.process(), b.process()
    first = pa.run(take, **names)
    pa.run(give, **names)
    second = pb.run(take, **names)
    pb.run(give, **names)
    assert second > first >= 1


def test_a_dead_holder_process_frees_its_lease_at_once(make_hosts, tmp_path: Path) -> None:
    a, b = make_hosts(2)
    names = _pool(tmp_path, [a, b])
    holder = a.process()
    holder.run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)
    holder.proc.kill()
    holder.proc.wait()
    deadline = time.monotonic() + 10
    pb = b.process()
    while True:
        try:
            pb.run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)
            break
        except RemoteError:
            assert time.monotonic() < deadline, "the dead process's lease was not freed"
            time.sleep(0.2)


def test_a_lease_acquired_for_another_process_dies_with_it(make_hosts, tmp_path: Path) -> None:
    """What the datapath needs: a server process registered with the daemon, the lease taken on its behalf."""
    (a,) = make_hosts(1)
    names = _pool(tmp_path, [a])
    env = {**os.environ, **a.env, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen([sys.executable, "-c", "from smapi.sr.sanlock import client as c; import sys, time; "
                               "c.registration(); print('ready', flush=True); time.sleep(600)"],
                              env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        pa = a.process()
        pa.run(SETUP + "c.acquire('pool', 'sr', res_area, pid=pid)", pid=server.pid, **names)
        with pytest.raises(RemoteError):
            pa.run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)
        server.send_signal(signal.SIGKILL)
        server.wait()
        time.sleep(1)
        pa.run(SETUP + "c.acquire('pool', 'sr', res_area)", **names)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


def test_a_private_daemon_starts_and_stops(tmp_path: Path) -> None:
    from tests.pool.conftest import WHY

    if WHY:
        pytest.skip(WHY)
    d = str(tmp_path / "sl")
    pid = daemon.start(d, "solo")
    assert daemon.answering(d) and daemon.start(d, "solo") == pid  # idempotent
    assert daemon.stop(d)
    assert not daemon.answering(d) and daemon.daemon_pid(d) is None
    assert not daemon.stop(d)


def test_names_too_long_for_sanlock_are_refused() -> None:
    with pytest.raises(ValueError):
        client.write_resource("x" * 48, "r", client.Area("/nonexistent"))


def test_the_cli_starts_and_stops_a_private_daemon(tmp_path: Path) -> None:
    from tests.pool.conftest import WHY

    if WHY:
        pytest.skip(WHY)
    d = str(tmp_path / "cli-daemon")
    smapi = [sys.executable, "-m", "smapi.cli.main"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        started = subprocess.run([*smapi, "sanlock", "start", "--run-dir", d], env=env, capture_output=True,
                                 text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        assert daemon.answering(d)  # it outlives the command that started it
        assert subprocess.run([*smapi, "sanlock", "status", "--run-dir", d], env=env).returncode == 0
        stopped = subprocess.run([*smapi, "sanlock", "stop", "--run-dir", d], env=env, capture_output=True,
                                 text=True, timeout=60)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert not daemon.answering(d)
        absent = subprocess.run([*smapi, "sanlock", "status", "--run-dir", d], env=env, capture_output=True,
                                text=True)
        assert absent.returncode == 1 and "no sanlock daemon" in absent.stderr
    finally:
        daemon.stop(d)


def test_leaders_read_from_storage_name_resources_and_host_slots(make_hosts, tmp_path: Path) -> None:
    """read_resource names what a slot holds (None when nothing was formatted there); lockspace_slots shows which
    host ids are taken, by which daemon, without joining; membership is the id this host's daemon joined with."""
    a, b = make_hosts(2)
    names = _pool(tmp_path, [a, b])
    pb = b.process()
    found = pb.run(SETUP + "result = c.read_resource(res_area)", **names)
    assert found[:2] == ["pool", "sr"]
    empty = pb.run(SETUP + "result = c.read_resource(c.Area(res_path, 0))", **names)
    assert empty is None
    slots = pb.run(SETUP + "result = [(s.host_id, s.timestamp > 0, s.owner) for s in c.lockspace_slots(ls_area, 3)]",
                   **names)
    assert slots == [[1, True, a.name], [2, True, b.name], [3, False, ""]]
    assert pb.run(SETUP + "result = c.membership('pool')[0]", **names) == 2
    pb.run(SETUP + "c.rem_lockspace('pool', 2, ls_area)", **names)
    assert pb.run(SETUP + "result = c.membership('pool')", **names) is None
    freed = pb.run(SETUP + "result = c.lockspace_slots(ls_area, 2)[1].timestamp", **names)
    assert freed == 0  # a host that left cleanly frees its slot: the next host may take it at once
