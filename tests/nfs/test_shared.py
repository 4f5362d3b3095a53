"""A shared SR: two hosts (own run directories, own mounts, own host ids) on one export."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from smapi.drivers.nfs.leases import Lease
from tests.nfs.conftest import Host, host_env
from tests.nfs.factory import device_config
from tests.nfs.ganesha import GaneshaServer

REPO = Path(__file__).resolve().parents[2]


def _new_sr(server: GaneshaServer):
    sub = f"shared-{uuid.uuid4().hex[:10]}"
    os.makedirs(os.path.join(server.export_dir, sub))
    return str(uuid.uuid4()), device_config(server, f"{server.serverpath}/{sub}",
                                           "3" if server.version == "3" else "4.1")


def test_two_hosts_see_each_other_after_a_scan(server: GaneshaServer, tmp_path: Path, no_leftovers: str) -> None:
    sr, dc = _new_sr(server)
    a = Host(tmp_path / "host-a", host_env(server))
    b = Host(tmp_path / "host-b", host_env(server))
    try:
        a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
        a.call("SR.attach", sr=sr, device_config=dc)
        b.call("SR.attach", sr=sr, device_config=dc)
        va = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "from a"})["vdi"]
        assert {v["vdi"] for v in b.call("SR.scan", sr=sr)} == {va}
        vb = b.call("VDI.snapshot", sr=sr, vdi_info=b.call("VDI.stat", sr=sr, vdi=va))["vdi"]
        b.call("VDI.set_name_label", sr=sr, vdi=va, new_name_label="renamed by b")
        seen = {v["vdi"]: v for v in a.call("SR.scan", sr=sr)}
        assert set(seen) == {va, vb} and seen[va]["name_label"] == "renamed by b"
        a.call("VDI.destroy", sr=sr, vdi=vb)
        assert {v["vdi"] for v in b.call("SR.scan", sr=sr)} == {va}
        b.call("SR.detach", sr=sr)
        a.call("SR.detach", sr=sr)
    finally:
        a.cleanup()
        b.cleanup()


def test_concurrent_changes_from_two_hosts_lose_nothing(server: GaneshaServer, tmp_path: Path,
                                                        no_leftovers: str) -> None:
    sr, dc = _new_sr(server)
    a = Host(tmp_path / "host-a", host_env(server))
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    count = 6
    procs = []
    for name in ("h1", "h2"):
        env = {**os.environ, **host_env(server), "SMAPI_RUN_DIR": str(tmp_path / name),
               "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.nfs._host_worker", sr, json.dumps(dc), name, str(count)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO)))
    made = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
            made += json.loads(out.strip().splitlines()[-1])
        a.call("SR.attach", sr=sr, device_config=dc)
        scan = {v["vdi"]: v for v in a.call("SR.scan", sr=sr)}
        assert set(scan) == set(made) and len(made) == 2 * count
        assert sorted(v["name_label"] for v in scan.values()) == sorted(f"{h}-{i}" for h in ("h1", "h2")
                                                                         for i in range(count))
        assert all(v["name_description"] == "by " + v["name_label"].split("-")[0] for v in scan.values())
        for vdi, info in scan.items():
            expected = info["name_label"].encode() * 100
            assert a.read(sr, vdi, 0, len(expected)) == expected
        a.call("SR.detach", sr=sr)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        a.cleanup()
        for name in ("h1", "h2"):
            Host(tmp_path / name, {}).cleanup()


def test_a_dead_hosts_lease_is_broken_after_it_expires(tmp_path: Path, monkeypatch) -> None:
    """Lease logic on a plain directory (the mkdir/rename atomicity it relies on is tested on NFS above)."""
    monkeypatch.setenv("SMAPI_NFS_LEASE_TTL", "0.5")
    locks = tmp_path / "locks"
    locks.mkdir()
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "other-host"))
    theirs = Lease(str(locks / "sr.lease"))
    assert theirs.try_take()  # then that host "dies": nobody renews it
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "this-host"))
    mine = Lease(str(locks / "sr.lease"))
    assert not mine.try_take()
    time.sleep(0.6)
    mine.try_take()  # breaks the stale lease...
    assert mine.try_take() or mine.token  # ...and takes it at the latest on the next try
    assert mine.read_owner()["token"] == mine.token  # type: ignore[index]
    assert not theirs.renew()  # the dead host, back, learns it lost the lease
    mine.give_back()
    assert not (locks / "sr.lease").exists()


def test_a_dead_process_lease_on_this_host_is_broken_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    path = tmp_path / "vdi-x.lease"
    p = subprocess.run([sys.executable, "-c", f"from smapi.drivers.nfs.leases import Lease; "
                        f"assert Lease({str(path)!r}).try_take()"], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0 and path.exists()
    lease = Lease(str(path))
    assert not lease.try_take() and lease.try_take()
    lease.give_back()


def test_a_lease_whose_owner_cannot_be_written_is_given_back_at_once(tmp_path: Path, monkeypatch) -> None:
    """mkdir won, describing the lease failed (the server went away, say): nobody must wait a TTL to break it."""
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    path = tmp_path / "sr.lease"

    def server_error(self: Lease, *, fresh: bool = False) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(Lease, "_write_owner", server_error)
        with pytest.raises(OSError):
            Lease(str(path)).try_take()
    assert not path.exists()
    other = Lease(str(path))
    assert other.try_take()
    other.give_back()
