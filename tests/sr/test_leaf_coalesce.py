"""Leaf-coalesce: a visible leaf whose hidden parent serves it alone is merged with that parent into one image
that keeps the VDI's identity; leaves that are busy, attached, reset on boot, too small or short of space wait."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict

import pytest

from smapi.sr import leafcoalesce
from tests.sr.helpers import FileSR, MiB, pattern, sha

REPO = Path(__file__).resolve().parents[2]
#: vdi_info fields that may change when the chain under a VDI changes (its size on disk)
VOLATILE = ("physical_utilisation",)


def _info(sr: FileSR, vdi: str) -> Dict[str, Any]:
    return {k: v for k, v in sr.stat(vdi).items() if k not in VOLATILE}


def _leaf_over_single_base(sr: FileSR, size: int = 4 * MiB) -> str:
    """A VDI over a hidden base copy that serves it alone (a snapshot was taken and destroyed)."""
    vdi = sr.create(size, name_label="leaf", name_description="kept through merges")
    sr.write(vdi, 0, pattern("base", 2 * MiB))
    sr.v("VDI.destroy", vdi=sr.snapshot(vdi))
    sr.write(vdi, MiB - 512, pattern("top", 70_000))
    assert sr.document().depth(vdi) == 2
    return vdi


def test_snapshot_destroy_rounds_end_at_depth_one(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(8 * MiB, name_label="busy disk")
    model = bytearray(8 * MiB)
    for i in range(6):
        data = pattern(("round", i), 100_000)
        off = i * 700_000 + 3 * 512
        fsr.write(vdi, off, data)
        model[off: off + len(data)] = data
        fsr.v("VDI.destroy", vdi=fsr.snapshot(vdi))
    fsr.write(vdi, 7 * MiB, pattern("last", 4096))
    model[7 * MiB: 7 * MiB + 4096] = pattern("last", 4096)
    doc = fsr.document()
    assert doc.depth(vdi) == 7
    volume = doc.vdis[vdi].volume
    info = _info(fsr, vdi)
    digests = fsr.digests()
    assert digests[vdi] == sha(bytes(model))

    stats = fsr.driver.gc(fsr.sr)
    assert stats["coalesced"] == 5 and stats["leaf_coalesced"] == 1, stats
    doc = fsr.document()
    assert doc.depth(vdi) == 1 and list(doc.vdis) == [vdi]
    assert doc.vdis[vdi].volume == volume and doc.vdis[vdi].parent is None
    assert fsr.digests() == digests
    assert _info(fsr, vdi) == info
    fsr.assert_consistent()
    # nothing more to do, and the merged VDI takes snapshots and writes like any other
    assert fsr.driver.gc(fsr.sr) == {"deleted": 0, "coalesced": 0, "leaf_coalesced": 0, "skipped": 0}
    snap = fsr.snapshot(vdi)
    fsr.write(vdi, 0, b"new" * 512)
    assert sha(fsr.read_all(snap)) == digests[vdi]
    fsr.assert_consistent()


def test_sync_collection_keeps_the_chain_at_depth_one(fsr: FileSR) -> None:
    assert os.environ["SMAPI_GC"] == "sync"
    vdi = fsr.create(4 * MiB)
    for i in range(4):
        fsr.write(vdi, i * MiB, pattern(("sync", i), 8192))
        data = fsr.read_all(vdi)
        fsr.v("VDI.destroy", vdi=fsr.snapshot(vdi))
        assert fsr.document().depth(vdi) == 1
        assert fsr.read_all(vdi) == data
    fsr.assert_consistent()


@pytest.mark.parametrize("where", ["this thread", "another thread"])
@pytest.mark.parametrize("writable", [True, False], ids=["writable", "read-only"])
def test_an_open_handle_postpones_the_merge(fsr: FileSR, monkeypatch, caplog, where: str, writable: bool) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    opened, release, closed = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with fsr.driver.open_vdi(fsr.sr, vdi, writable=writable) as h:
            if writable:
                h.write(3 * MiB, b"during" * 100)
                h.flush()
            opened.set()
            release.wait(30)
            if writable:  # written while the collector looked at (and skipped) the VDI
                h.write(3 * MiB + 4096, b"after" * 100)
                h.flush()
        closed.set()

    if where == "another thread":
        thread = threading.Thread(target=hold)
        thread.start()
        assert opened.wait(30)
    else:
        handle = fsr.driver.open_vdi(fsr.sr, vdi, writable=writable)
        if writable:
            handle.write(3 * MiB, b"during" * 100)
            handle.flush()
    with caplog.at_level(logging.INFO, logger="smapi.sr.gc"):
        stats = fsr.driver.gc(fsr.sr)
    assert stats["leaf_coalesced"] == 0 and stats["skipped"] == 1, stats
    assert "busy" in caplog.text
    assert fsr.document().depth(vdi) == 2
    if where == "another thread":
        release.set()
        thread.join(30)
        assert closed.is_set()
    else:
        if writable:
            handle.write(3 * MiB + 4096, b"after" * 100)
            handle.flush()
        handle.close()
    data = fsr.read_all(vdi)
    if writable:
        assert data[3 * MiB: 3 * MiB + 600] == b"during" * 100
        assert data[3 * MiB + 4096: 3 * MiB + 4596] == b"after" * 100
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 1
    assert fsr.document().depth(vdi) == 1
    assert fsr.read_all(vdi) == data
    fsr.assert_consistent()


def test_an_attached_vdi_waits_for_its_detach(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    digest = sha(fsr.read_all(vdi))
    fsr.v("VDI.attach", dp="dp", vdi=vdi, read_write=True)
    fsr.v("VDI.activate", dp="dp", vdi=vdi)
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 0
    assert fsr.document().depth(vdi) == 2
    fsr.v("VDI.deactivate", dp="dp", vdi=vdi)
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 0  # still attached
    fsr.v("VDI.detach", dp="dp", vdi=vdi)
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 1
    assert sha(fsr.read_all(vdi)) == digest
    fsr.assert_consistent()


def test_an_attach_during_the_copy_cancels_the_merge(fsr: FileSR, monkeypatch, caplog) -> None:
    """A datapath writes the volume without the VDI lock: an attach while the collector copies must win."""
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    digest = sha(fsr.read_all(vdi))
    copy = leafcoalesce.copy_into_parent

    def copy_then_attach(engine: Any, leaf_volume: str) -> None:
        copy(engine, leaf_volume)
        fsr.v("VDI.attach", dp="late", vdi=vdi, read_write=True)

    monkeypatch.setattr(leafcoalesce, "copy_into_parent", copy_then_attach)
    with caplog.at_level(logging.INFO, logger="smapi.sr.gc"):
        stats = fsr.driver.gc(fsr.sr)
    assert stats["leaf_coalesced"] == 0, stats
    assert "attached while its data was being copied" in caplog.text
    assert fsr.document().depth(vdi) == 2 and sha(fsr.read_all(vdi)) == digest
    fsr.assert_consistent()  # no journal left behind
    monkeypatch.setattr(leafcoalesce, "copy_into_parent", copy)
    fsr.v("VDI.detach", dp="late", vdi=vdi)
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 1
    assert sha(fsr.read_all(vdi)) == digest
    fsr.assert_consistent()


def test_reset_on_boot_vdis_are_not_merged(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(2 * MiB)
    fsr.write(vdi, 0, pattern("golden", MiB))
    golden = sha(fsr.read_all(vdi))
    fsr.v("VDI.set_persistent", vdi=vdi, persistent=False)
    fsr.write(vdi, 0, pattern("session", 4096))
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 0
    assert fsr.document().depth(vdi) == 2
    fsr.v("VDI.epoch_begin", vdi=vdi, persistent=False)
    assert sha(fsr.read_all(vdi)) == golden  # the reset still has its base to go back to
    fsr.assert_consistent()


def test_a_leaf_smaller_than_its_base_is_not_merged(fsr: FileSR, monkeypatch) -> None:
    """compose puts a VDI over another's (bigger) base; merging would make it read bigger than it is."""
    monkeypatch.setenv("SMAPI_GC", "off")
    big = fsr.create(8 * MiB)
    fsr.write(big, 0, pattern("big", 8 * MiB))
    small = fsr.create(2 * MiB)
    fsr.write(small, 0, pattern("small", 4096))
    fsr.v("VDI.compose", vdi1=big, vdi2=small)
    fsr.v("VDI.destroy", vdi=big)
    info, digest = _info(fsr, small), sha(fsr.read_all(small))
    fsr.driver.gc(fsr.sr)
    assert fsr.document().depth(small) == 2
    assert _info(fsr, small) == info and sha(fsr.read_all(small)) == digest
    fsr.assert_consistent()


def _set_quota(sr: FileSR, quota: int) -> None:
    path = os.path.join(sr.path, "sr.json")
    with open(path) as f:
        doc = json.load(f)
    doc["options"]["physical_size"] = str(quota)
    with open(path, "w") as f:
        json.dump(doc, f)


def test_no_room_to_grow_the_base_skips_with_a_reason(fsr: FileSR, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    digest = sha(fsr.read_all(vdi))
    used = sum(os.stat(os.path.join(fsr.path, r.volume)).st_blocks * 512 for r in fsr.document().vdis.values())
    _set_quota(fsr, used + MiB)  # less than the leaf's own data plus a block
    with caplog.at_level(logging.INFO, logger="smapi.sr.gc"):
        stats = fsr.driver.gc(fsr.sr)
    assert stats["leaf_coalesced"] == 0 and stats["skipped"] == 1, stats
    assert "bytes free" in caplog.text
    assert fsr.document().depth(vdi) == 2 and sha(fsr.read_all(vdi)) == digest
    fsr.assert_consistent()
    _set_quota(fsr, used + 64 * MiB)
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 1
    assert sha(fsr.read_all(vdi)) == digest
    fsr.assert_consistent()


def test_running_out_of_space_mid_copy_rolls_back(fsr: FileSR, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    digest = sha(fsr.read_all(vdi))

    def full(engine: Any, leaf_volume: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(leafcoalesce, "copy_into_parent", full)
    with caplog.at_level(logging.INFO, logger="smapi.sr.gc"):
        assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 0
    assert "ran out of space" in caplog.text
    assert fsr.document().depth(vdi) == 2 and sha(fsr.read_all(vdi)) == digest
    fsr.assert_consistent()


def test_writer_process_and_collector_race(fsr: FileSR, monkeypatch) -> None:
    """Another process keeps writing the leaf (a handle per write) while this one snapshots, destroys the
    snapshots and collects: every write survives, and the chain ends at depth one."""
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, fsr.path, vdi], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    merged = 0
    try:
        while writer.poll() is None:
            fsr.v("VDI.destroy", vdi=fsr.snapshot(vdi))
            merged += fsr.driver.gc(fsr.sr)["leaf_coalesced"]
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err[-3000:]
    expected = json.loads(out.strip().splitlines()[-1])
    fsr.driver.gc(fsr.sr)
    assert fsr.document().depth(vdi) == 1
    assert sha(fsr.read_all(vdi)) == expected
    assert merged >= 1
    fsr.assert_consistent()


WRITER = """
import hashlib, json, random, sys
from tests.sr.helpers import FileSR
sr = FileSR(sys.argv[1])
vdi = sys.argv[2]
model = bytearray(sr.read_all(vdi))
rng = random.Random(7)
for i in range(150):
    off = rng.randrange(0, len(model) - 65536) // 512 * 512
    data = rng.randbytes(rng.choice([512, 4096, 65536]))
    sr.write(vdi, off, data)
    model[off: off + len(data)] = data
    if i % 10 == 0:
        assert sr.read_all(vdi) == bytes(model), i
print(json.dumps(hashlib.sha256(bytes(model)).hexdigest()))
"""


def _gc_killed_at(sr: FileSR, step: str) -> None:
    from smapi.sr.faults import FAULT_EXIT_CODE

    env = {**os.environ, "SMAPI_FAULT": step, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tests.sr._crash_worker", "leaf-coalesce", sr.path, "{}"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr


def test_a_decided_merge_is_finished_by_the_next_verb(fsr: FileSR, monkeypatch) -> None:
    """Past the decision the leaf's old image may be gone: whoever next takes the SR lock (here a data handle,
    on the same host, without any attach or collection) must finish the merge before reading."""
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    digest = sha(fsr.read_all(vdi))
    _gc_killed_at(fsr, "leaf-coalesce.renamed")
    assert sha(fsr.read_all(vdi)) == digest
    assert fsr.document().depth(vdi) == 1
    fsr.assert_consistent()


def test_an_undecided_merge_waits_for_a_collector_and_loses_later_writes_to_nobody(fsr: FileSR,
                                                                                    monkeypatch) -> None:
    """Before the decision the entry may belong to a live collector, so verbs leave it alone and the VDI stays
    usable; the next collector forgets it and merges again, with what was written meanwhile."""
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = _leaf_over_single_base(fsr)
    _gc_killed_at(fsr, "leaf-coalesce.copied")
    fsr.write(vdi, 2 * MiB + 512, b"meanwhile" * 100)
    data = fsr.read_all(vdi)
    assert len(os.listdir(os.path.join(fsr.path, ".journal"))) == 1
    assert fsr.driver.gc(fsr.sr)["leaf_coalesced"] == 1
    assert fsr.read_all(vdi) == data and fsr.document().depth(vdi) == 1
    fsr.assert_consistent()
