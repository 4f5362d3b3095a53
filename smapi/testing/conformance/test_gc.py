"""Garbage collection and coalesce: hidden images that serve nobody go, chains get shorter, and no visible VDI
reads one byte differently (sha256 of full reads before and after).

How long a chain is cannot be read through the storage interface, but its effect can: a VDI may take snapshots
only until its chain reaches the classic limit (SR_BACKEND_FAILURE_109). A VDI whose snapshots were all
destroyed must, after GC, be able to take (nearly) as many snapshots as a brand-new VDI, and the SR must report
the space of the collected images as free again. `SMAPI_GC=off` keeps automatic collection out of the way.
"""

from __future__ import annotations

from typing import Dict

import pytest

from smapi.interface.errors import Backend_error
from smapi.testing.client import MiB, SRClient, new_sr_uuid, pattern
from smapi.testing.features import needs
from smapi.testing.sut import SRUnderTest

pytestmark = needs("VDI_SNAPSHOT", "VDI_CLONE", "open_vdi", "gc")
QUOTA = 256 * MiB


def _snapshot_capacity(sr: SRClient, vdi: str) -> int:
    """How many snapshots `vdi` can take before the chain limit; the snapshots are destroyed again (their
    images stay behind as garbage until the next collection)."""
    taken = []
    try:
        for _ in range(64):
            taken.append(sr.snapshot(vdi)["vdi"])
    except Backend_error as e:
        assert e.code == "SR_BACKEND_FAILURE_109", e
    else:
        raise AssertionError("64 snapshots without reaching the chain limit")
    for snap in taken:
        sr.destroy(snap)
    return len(taken)


def _build_tree(sr: SRClient) -> Dict[str, str]:
    """leaf with snapshots s1, s2 (data in every layer), a clone of s2 with its own writes, and a stranger."""
    leaf = sr.create(3 * MiB, name_label="leaf")["vdi"]
    sr.write(leaf, 0, pattern("layer0", 3 * MiB))
    s1 = sr.snapshot(leaf)["vdi"]
    sr.write(leaf, 512 * 1000, pattern("layer1", 300_000))
    s2 = sr.snapshot(leaf)["vdi"]
    sr.write(leaf, 2 * MiB + 4096, pattern("layer2", 8192))
    clone = sr.clone(s2)["vdi"]
    sr.write(clone, 100, pattern("clone", 5000))
    stranger = sr.create(MiB, name_label="stranger")["vdi"]
    sr.write(stranger, 0, pattern("stranger", MiB))
    return {"leaf": leaf, "s1": s1, "s2": s2, "clone": clone, "stranger": stranger}


def test_gc_after_destroying_snapshots_keeps_every_byte(sr: SRClient) -> None:
    t = _build_tree(sr)
    before = sr.digests()
    assert set(before) == set(t.values())
    sr.gc()  # nothing is garbage yet: GC must be a no-op for what is visible
    assert sr.digests() == before
    sr.destroy(t["s1"])
    sr.destroy(t["s2"])
    survivors = {v: before[v] for v in (t["leaf"], t["clone"], t["stranger"])}
    assert sr.digests() == survivors
    sr.gc()
    assert sr.digests() == survivors
    sr.gc()  # a second pass finds nothing more to do and still changes nothing
    sr.reload()
    assert sr.digests() == survivors
    # the survivors are fully usable after their chains were rearranged under them
    sr.write(t["leaf"], 0, b"after gc" * 64)
    s3 = sr.snapshot(t["clone"])["vdi"]
    assert sr.digest(s3) == survivors[t["clone"]]
    assert sr.read(t["leaf"], 0, 512) == b"after gc" * 64


def test_gc_shortens_chains_and_frees_their_space(sut: SRUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the explicit gc() below may collect, or the measurements before it would be collected already.
    monkeypatch.setenv("SMAPI_GC", "off")
    sr = SRClient(sut, new_sr_uuid())
    sr.create_sr(physical_size=QUOTA)  # free_space then counts this SR's images only, not the whole disk
    sr.attach()
    fresh = sr.create(MiB)["vdi"]
    capacity = _snapshot_capacity(sr, fresh)  # what a new VDI can take
    sr.gc()
    leaf = sr.create(MiB)["vdi"]
    for i in range(5):
        sr.write(leaf, i * 4096, pattern(("gc", i), 4096))
        sr.destroy(sr.snapshot(leaf)["vdi"])
    sr.write(leaf, MiB - 4096, pattern("top", 4096))
    data = sr.digest(leaf)
    before_gc = _snapshot_capacity(sr, leaf)  # the chain under the leaf is long now, and all of it is garbage
    free_before = sr.v("SR.stat")["free_space"]
    sr.gc()
    free_after = sr.v("SR.stat")["free_space"]
    assert sr.digest(leaf) == data and set(sr.scan()) == {fresh, leaf}
    assert free_after > free_before, f"GC freed no space ({free_before} -> {free_after} bytes free)"
    # A leaf-coalesce would make the chain exactly as short as new; without one, the leaf's own oldest data
    # may stay in one hidden image below it. Anything more is garbage GC left behind.
    after_gc = _snapshot_capacity(sr, leaf)
    assert after_gc >= capacity - 1, (
        f"after GC the leaf can take {after_gc} snapshots (before GC: {before_gc}, a new VDI: {capacity}): "
        f"its chain still holds images that only destroyed snapshots needed")
    sr.gc()
    assert sr.digest(leaf) == data
    sr.detach()


def test_gc_keeps_images_that_a_clone_still_needs(sr: SRClient) -> None:
    base = sr.create(2 * MiB)["vdi"]
    sr.write(base, 0, pattern("gold", 2 * MiB))
    snap = sr.snapshot(base)["vdi"]
    clones = [sr.clone(snap)["vdi"] for _ in range(3)]
    for i, c in enumerate(clones):
        sr.write(c, i * MiB // 2, pattern(("own", i), 10_000))
    expected = {c: sr.digest(c) for c in clones}
    # the original and its snapshot go; the shared base image must stay for the clones
    sr.destroy(snap)
    sr.destroy(base)
    sr.gc()
    assert set(sr.scan()) == set(clones)
    assert {c: sr.digest(c) for c in clones} == expected
    sr.destroy(clones[0])
    sr.gc()
    assert {c: sr.digest(c) for c in clones[1:]} == {c: expected[c] for c in clones[1:]}
