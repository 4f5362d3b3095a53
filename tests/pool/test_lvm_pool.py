"""An LVM pool SR (`shared=true`) on one loop device seen by two simulated hosts, each with its own sanlock daemon,
run directory, lvm.conf, driver locks and lvm2 locking_dir (tests/pool/lvmpool.py): issue 14's scenarios. Every
write a host acknowledged (flushed) reads back afterwards.

The scenarios share one SR, attached on both hosts once per module (each attach joins the SR's lockspace, ~3 s):
every scenario makes its own VDIs and leaves the SR attached on both, as it found it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.pool.lvmpool import (
    MiB,
    Pool,
    activate,
    lvm_pool,
    qemu_io,
    refused_as_active_on,
    refused_in_use_by,
    release,
    tool_missing,
)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    with lvm_pool(Path(tmp_path_factory.mktemp("lvm-pool"))) as made:
        yield made


def test_a_vdi_active_on_a_is_refused_on_b_and_b_s_collector_leaves_it_alone(pool: Pool) -> None:
    why = tool_missing("qemu-io")
    if why:
        pytest.skip(why)
    a, b, sr = pool.a, pool.b, pool.sr
    vdi = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": 4 * MiB, "name_label": "disk"})["vdi"]
    # a snapshot whose removal leaves `vdi` a leaf-coalesce candidate (the single child of a hidden base)
    snap = a.call("VDI.snapshot", sr=sr, vdi_info=a.call("VDI.stat", sr=sr, vdi=vdi))["vdi"]
    uri = activate(a, sr, vdi, "vm-a", rw=True)["xenstore_data"]["nbd-uri"]
    qemu_io(uri, "write -P 0x11 0 65536", "flush")

    # activation on B: refused, read-write and read-only alike (A holds the VDI exclusively)
    for rw in (True, False):
        b.call("VDI.attach", sr=sr, dp="vm-b", vdi=vdi, read_write=rw)
        refused_as_active_on(a, sr, lambda: b.call("VDI.activate", sr=sr, dp="vm-b", vdi=vdi))
        b.call("VDI.detach", sr=sr, dp="vm-b", vdi=vdi)

    # chain-changing verbs on B: refused, naming A; nothing changed on the device
    lvs = pool.image_lvs()
    info = b.call("VDI.stat", sr=sr, vdi=vdi)
    refused_as_active_on(a, sr, lambda: b.call("VDI.snapshot", sr=sr, vdi_info=info))
    refused_as_active_on(a, sr, lambda: b.call("VDI.clone", sr=sr, vdi_info=info))
    refused_as_active_on(a, sr, lambda: b.call("VDI.resize", sr=sr, vdi=vdi, new_size=8 * MiB))
    refused_as_active_on(a, sr, lambda: b.call("VDI.destroy", sr=sr, vdi=vdi))
    assert pool.image_lvs() == lvs
    assert b.call("VDI.stat", sr=sr, vdi=vdi)["virtual_size"] == 4 * MiB

    # B removes the snapshot while A keeps writing: B's synchronous collector would leaf-coalesce `vdi` into its
    # base and must skip it (only the snapshot's LV goes), and an explicit collection on B skips it too
    qemu_io(uri, "write -P 0x22 1048576 65536")
    b.call("VDI.destroy", sr=sr, vdi=snap)
    qemu_io(uri, "write -P 0x33 2097152 65536", "flush")
    b.main.run("driver.engine_for(sr).gc()", sr=sr)
    qemu_io(uri, "write -P 0x44 3145728 65536", "flush")
    assert len(pool.image_lvs()) == len(lvs) - 1, "the leaf-coalesce of the VDI active on A was not skipped"
    qemu_io(uri, "read -P 0x11 0 65536", "read -P 0x22 1048576 65536", "read -P 0x33 2097152 65536",
            "read -P 0x44 3145728 65536")
    assert pool.record_volumes() == pool.image_lvs()

    release(a, sr, vdi, "vm-a")
    # every acknowledged write reads back on B, which may now change the VDI and activate it
    for offset, byte in ((0, "\x11"), (MiB, "\x22"), (2 * MiB, "\x33"), (3 * MiB, "\x44")):
        assert b.read(sr, vdi, offset, 4) == byte * 4, offset
    b.call("VDI.resize", sr=sr, vdi=vdi, new_size=8 * MiB)
    activate(b, sr, vdi, "vm-b", rw=True)
    refused_as_active_on(b, sr, lambda: a.call("VDI.snapshot", sr=sr, vdi_info=a.call("VDI.stat", sr=sr, vdi=vdi)))
    release(b, sr, vdi, "vm-b")
    # read-only activations share the lease across hosts
    activate(a, sr, vdi, "ro-a", rw=False)
    activate(b, sr, vdi, "ro-b", rw=False)
    release(a, sr, vdi, "ro-a")
    release(b, sr, vdi, "ro-b")
    b.call("VDI.destroy", sr=sr, vdi=vdi)
    assert pool.record_volumes() == pool.image_lvs()


def test_sr_destroy_on_b_is_refused_while_a_is_attached(pool: Pool) -> None:
    a, b, sr = pool.a, pool.b, pool.sr
    vdi = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": MiB, "name_label": "kept"})["vdi"]
    a.write(sr, vdi, 0, "acknowledged by a")
    lvs = pool.image_lvs()
    refused_in_use_by(a, sr, lambda: b.call("SR.destroy", sr=sr))
    # nothing went: the VG, its LVs, the records, the data; and both hosts still use the SR
    assert pool.image_lvs() == lvs and pool.record_volumes() == lvs
    assert a.read(sr, vdi, 0, 17) == "acknowledged by a" == b.read(sr, vdi, 0, 17)
    assert vdi in {v["vdi"] for v in b.call("SR.scan", sr=sr)}
    a.call("VDI.destroy", sr=sr, vdi=vdi)


#: concurrent verb processes per host (issue 14: 2 hosts x 5 concurrent creates and snapshots)
PER_HOST = 5


def test_concurrent_creates_and_snapshots_from_two_hosts_leave_records_equal_to_lvs(pool: Pool) -> None:
    """Ten processes (five per host) start together, each creating a VDI, writing it and snapshotting it. With
    host-local locks only, VDIs were lost, records pointed at missing LVs and orphan LVs were left behind."""
    a, b, sr = pool.a, pool.b, pool.sr
    before = {v["vdi"] for v in a.call("SR.scan", sr=sr)}
    workers = [(host, proc) for host in (a, b) for proc in host.processes(PER_HOST)]
    start = threading.Barrier(len(workers))
    made: Dict[str, Tuple[str, str]] = {}  # label -> (vdi, snapshot)
    errors: List[BaseException] = []

    def work(index: int) -> None:
        host, proc = workers[index]
        label = f"{host.name}-{index}"
        try:
            start.wait(timeout=60)
            made[label] = tuple(proc.run("""
vdi = call("VDI.create", sr=sr, vdi_info={"virtual_size": 2 << 20, "name_label": label})["vdi"]
write(sr, vdi, 4096, label * 64)
snap = call("VDI.snapshot", sr=sr, vdi_info=call("VDI.stat", sr=sr, vdi=vdi))["vdi"]
write(sr, vdi, 4096, "after " + label)
result = [vdi, snap]
""", sr=sr, label=label))
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        for _, proc in workers:
            proc.close()
    assert not errors, errors
    assert len(made) == 2 * PER_HOST
    # the SR's records are exactly its image LVs: no VDI lost, no record without its LV, no orphan LV
    assert pool.record_volumes(a) == pool.record_volumes(b) == pool.image_lvs()
    scan = {v["vdi"]: v for v in b.call("SR.scan", sr=sr)}
    assert set(scan) - before == {v for pair in made.values() for v in pair}
    for label, (vdi, snap) in made.items():  # every VDI reads back what its host acknowledged
        assert scan[vdi]["name_label"] == label
        assert b.read(sr, snap, 4096, 64 * len(label)) == label * 64
        assert a.read(sr, vdi, 4096, 6 + len(label)) == "after " + label
    for vdi, snap in made.values():
        a.call("VDI.destroy", sr=sr, vdi=snap)
        b.call("VDI.destroy", sr=sr, vdi=vdi)
    assert pool.record_volumes() == pool.image_lvs()
