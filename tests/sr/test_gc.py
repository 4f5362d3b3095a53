"""Garbage collection and coalesce, checked by checksums; the chain limit; background collection."""

from __future__ import annotations

import os
import time

import pytest

from smapi.interface.errors import Backend_error
from tests.sr.helpers import FileSR, MiB, pattern, sha


def _layers(sr: FileSR, vdi: str, n: int) -> bytearray:
    """n snapshot/destroy rounds, each writing a new region: a tall chain of single-child hidden images."""
    model = bytearray(sr.stat(vdi)["virtual_size"])
    for i in range(n):
        data = pattern(("layer", i), 64 * 1024)
        off = (i * 192 * 1024) % (len(model) - len(data))
        sr.write(vdi, off, data)
        model[off: off + len(data)] = data
        sr.v("VDI.destroy", vdi=sr.snapshot(vdi))
    return model


def test_gc_coalesces_a_tall_chain_and_keeps_the_data(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(8 * MiB)
    keep = fsr.create(MiB)
    fsr.write(keep, 0, pattern("keep", MiB))
    model = _layers(fsr, vdi, 8)
    snap = fsr.snapshot(vdi)  # a live snapshot pins its base: that one must stay
    doc = fsr.document()
    assert doc.depth(vdi) == 10
    digests = fsr.digests()
    assert digests[vdi] == sha(bytes(model)) == digests[snap]
    stats = fsr.driver.gc(fsr.sr)
    # nine hidden levels collapse into one, shared by the VDI and its snapshot
    assert stats["coalesced"] == 8 and stats["deleted"] == 0, stats
    doc = fsr.document()
    assert doc.depth(vdi) == 2 and doc.depth(snap) == 2
    assert fsr.digests() == digests
    fsr.assert_consistent()
    fsr.v("VDI.destroy", vdi=snap)
    fsr.driver.gc(fsr.sr)
    assert fsr.digests() == {vdi: digests[vdi], keep: digests[keep]}
    fsr.assert_consistent()


def test_gc_deletes_hidden_images_nobody_references(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(2 * MiB)
    fsr.write(vdi, 0, pattern("x", MiB))
    clone = fsr.clone(vdi)
    fsr.v("VDI.destroy", vdi=vdi)
    fsr.v("VDI.destroy", vdi=clone)
    assert [r.hidden for r in fsr.document().vdis.values()] == [True]
    assert fsr.driver.gc(fsr.sr)["deleted"] == 1
    assert fsr.document().vdis == {}
    fsr.assert_consistent()


def test_snapshot_chain_limit_is_30_images(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(MiB)
    for _ in range(29):
        fsr.snapshot(vdi)
    assert fsr.document().depth(vdi) == 30
    with pytest.raises(Backend_error) as e:
        fsr.snapshot(vdi)
    assert e.value.code == "SR_BACKEND_FAILURE_109" and "limit 30" in e.value.message()
    fsr.assert_consistent()


def test_background_gc_runs_detached_and_finishes(fsr: FileSR, monkeypatch) -> None:
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(4 * MiB)
    model = _layers(fsr, vdi, 3)
    monkeypatch.setenv("SMAPI_GC", "background")
    fsr.v("VDI.destroy", vdi=fsr.snapshot(vdi))  # schedules a detached collector
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = fsr.document()
        if doc.depth(vdi) <= 2 and not os.listdir(os.path.join(fsr.path, ".journal")):
            break
        time.sleep(0.05)
    assert fsr.document().depth(vdi) <= 2
    # the collector released its lock: a synchronous run gets it at once and has nothing left to do
    assert fsr.driver.engine_for(fsr.sr).gc_lock().acquire(timeout=30)
    fsr.driver.engine_for(fsr.sr).gc_lock().release()
    assert sha(fsr.read_all(vdi)) == sha(bytes(model))
    fsr.assert_consistent()


def test_gc_off_by_device_config(fsr: FileSR, monkeypatch, env) -> None:
    monkeypatch.delenv("SMAPI_GC")
    fsr.v("SR.detach")
    fsr.call("SR.attach", sr=fsr.sr, device_config={**fsr.device_config, "gc": "off"})
    vdi = fsr.create(MiB)
    fsr.v("VDI.destroy", vdi=fsr.clone(vdi))
    fsr.v("VDI.destroy", vdi=vdi)
    assert len(fsr.document().vdis) == 1  # the base copy waits for an explicit collection
    fsr.driver.gc(fsr.sr)
    assert fsr.document().vdis == {}


def test_a_collection_failing_after_a_verb_does_not_fail_the_verb(fsr: FileSR, monkeypatch, caplog) -> None:
    """SMAPI_GC=sync collects inside the verb, after it committed: the caller must hear that its destroy
    happened, and the failure stays for an explicit collection to report."""
    monkeypatch.setenv("SMAPI_GC", "off")
    vdi = fsr.create(2 * MiB)
    fsr.write(vdi, 0, pattern("base", MiB))
    snap = fsr.snapshot(vdi)
    base = fsr.document().vdis[vdi].parent
    assert base is not None
    # A damaged base: its dynamic header (after the footer copy) no longer says what it is.
    with open(os.path.join(fsr.path, fsr.document().vdis[base].volume), "r+b") as f:
        f.seek(512)
        f.write(b"\0" * 8)
    monkeypatch.setenv("SMAPI_GC", "sync")
    fsr.v("VDI.destroy", vdi=snap)  # leaves the base with one child: the collector wants to merge it, and fails
    assert snap not in fsr.scan()
    assert "garbage collection after the change failed" in caplog.text
    with pytest.raises(Backend_error):
        fsr.driver.gc(fsr.sr)
