"""A shared NFS SR across simulated hosts: each its own sanlock daemon, run directory and FUSE mount."""

from __future__ import annotations

import threading
from typing import Dict, List

import pytest

from tests.pool.expiry import create_after_expiry, die_mid_create
from tests.pool.hostproc import RemoteError
from tests.pool.nfspool import NfsHost, new_sr, nfs_env


def _hosts(make_hosts, server, n: int) -> List[NfsHost]:  # type: ignore[no-untyped-def]
    return [NfsHost(h) for h in make_hosts(n, **nfs_env(server))]


def test_two_hosts_share_an_sr_and_see_each_others_changes(make_hosts, nfs_server) -> None:
    a, b = _hosts(make_hosts, nfs_server, 2)
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    b.call("SR.attach", sr=sr, device_config=dc)
    va = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "from a"})["vdi"]
    assert {v["vdi"] for v in b.call("SR.scan", sr=sr)} == {va}
    vb = b.call("VDI.snapshot", sr=sr, vdi_info=b.call("VDI.stat", sr=sr, vdi=va))["vdi"]
    b.call("VDI.set_name_label", sr=sr, vdi=va, new_name_label="renamed by b")
    seen = {v["vdi"]: v for v in a.call("SR.scan", sr=sr)}
    assert set(seen) == {va, vb} and seen[va]["name_label"] == "renamed by b"
    # both hosts are live members of the SR's lockspace, with different host ids
    ids = a.main.run("from smapi.sr.sanlock import client; result = sorted(client.live_hosts(ls))",
                     ls="smapi-" + sr)
    assert ids == [1, 2]
    a.call("VDI.destroy", sr=sr, vdi=vb)
    assert {v["vdi"] for v in b.call("SR.scan", sr=sr)} == {va}
    b.call("SR.detach", sr=sr)
    a.call("SR.detach", sr=sr)


def test_concurrent_changes_from_two_hosts_lose_nothing(make_hosts, nfs_server) -> None:
    a, b = _hosts(make_hosts, nfs_server, 2)
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    count = 5
    made: Dict[str, List[str]] = {}
    errors: List[BaseException] = []

    def work(host: NfsHost) -> None:
        try:
            host.call("SR.attach", sr=sr, device_config=dc)
            mine = []
            for i in range(count):
                label = f"{host.name}-{i}"
                vdi = host.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": label})["vdi"]
                host.write(sr, vdi, 0, label * 100)
                host.call("VDI.set_name_description", sr=sr, vdi=vdi, new_name_description=f"by {host.name}")
                mine.append(vdi)
            made[host.name] = mine
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(h,)) for h in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    scan = {v["vdi"]: v for v in a.call("SR.scan", sr=sr)}
    assert set(scan) == set(made[a.name]) | set(made[b.name]) and len(scan) == 2 * count
    for vdi, info in scan.items():
        host = info["name_label"].split("-")[0]
        assert info["name_description"] == f"by {host}"
        expected = info["name_label"] * 100
        assert b.read(sr, vdi, 0, len(expected)) == expected  # every acknowledged write reads back
    a.call("SR.detach", sr=sr)
    b.call("SR.detach", sr=sr)


def test_sr_destroy_is_refused_while_another_host_is_attached(make_hosts, nfs_server) -> None:
    a, b = _hosts(make_hosts, nfs_server, 2)
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    b.call("SR.attach", sr=sr, device_config=dc)
    vdi = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "kept"})["vdi"]
    b.write(sr, vdi, 0, "acknowledged")
    with pytest.raises(RemoteError) as refused:
        a.call("SR.destroy", sr=sr)
    assert "other live hosts" in str(refused.value) and "host id 2" in str(refused.value)
    assert b.read(sr, vdi, 0, 12) == "acknowledged"
    b.call("SR.detach", sr=sr)
    a.call("SR.destroy", sr=sr)


def test_an_sr_document_from_an_older_lease_generation_is_refused(make_hosts, nfs_server) -> None:
    """Fencing: a process whose SR lease is older than the stored document's must not save it."""
    a, b = _hosts(make_hosts, nfs_server, 2)
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    b.call("SR.attach", sr=sr, device_config=dc)
    stale = a.process()
    # A's process takes the SR lease and reads the document, then stalls (here: simply keeps what it read)...
    stale.run("""
from smapi.sr.locks import FileLock
from smapi.sr.sanlock import client
engine = driver.engine_for(sr)
lock = engine.sr_lock(); lock.acquire()
doc = engine.load()
pool = engine.substrate.pool()
result = pool.generation("sr")
# ...and loses the lease without knowing it, as a host stalled past expiry does: the sanlock lease is gone (and,
# here, the host-local flock too, so that this host's other processes are not kept waiting by the model)
client.release(pool.lockspace, "sr", pool.store.resource_area("sr", pool.lockspace))
FileLock.release(lock)
""", sr=sr)
    b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "b's change"})
    with pytest.raises(RemoteError) as fenced:
        stale.run("doc.name_label = 'stale'; engine.save(doc)")
    assert "lease version" in str(fenced.value)
    assert [v["name_label"] for v in a.call("SR.scan", sr=sr)] == ["b's change"]
    b.call("SR.detach", sr=sr)
    a.call("SR.detach", sr=sr)


@pytest.mark.slow
@pytest.mark.parametrize("nfs_server", ["4"], indirect=True, ids=["v4"])
def test_a_killed_host_s_leases_pass_to_another_host_after_expiry(make_hosts, nfs_server) -> None:
    """Host A dies outright (its sanlock daemon and its verb process) in the middle of a VDI.create, holding
    the SR lease: B waits until A's lease has expired (~68 s at io_timeout 1 s), then replays A's journal."""
    a, b = _hosts(make_hosts, nfs_server, 2)
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    b.call("SR.attach", sr=sr, device_config=dc)
    kept = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "kept"})["vdi"]
    b.write(sr, kept, 0, "acknowledged before A died")
    # A's verb, half-way: SR lease held, journal entry written, volume created, record not yet saved
    die_mid_create(a, sr, "orphan", 0)
    made = create_after_expiry(b, sr, "after")
    scan = {v["vdi"]: v["name_label"] for v in b.call("SR.scan", sr=sr)}
    assert scan == {kept: "kept", made: "after"}
    volumes = b.main.run("result = sorted(driver.engine_for(sr).substrate.list_volumes())", sr=sr)
    assert not any("orphan" in v for v in volumes), volumes  # A's journal was replayed: its volume is gone
    assert b.read(sr, kept, 0, 26) == "acknowledged before A died"
    b.call("SR.detach", sr=sr)
