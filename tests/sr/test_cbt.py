"""Changed-block tracking against a model: random writes (any offset, any length) through open_vdi, snapshots,
clones, resizes, snapshot destroys, data_destroy and garbage collection (coalesce), on a file SR.

For every pair of tracked snapshots (and each snapshot against the VDI's current content) the reported bitmap
must satisfy: blocks whose content differs between the two  ⊆  reported  ⊆  blocks any write touched in between
(touched = 64 KiB blocks overlapping a write). The lower bound is computed from the model's contents; the
contents themselves are checked against the SR while the snapshots still hold data.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import List, Set, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smapi.interface.errors import Backend_error
from smapi.sr import cbt, cbtlog
from tests.sr.helpers import FileSR, MiB, pattern

G = cbtlog.GRANULARITY


def blocks_of_write(offset: int, length: int) -> Set[int]:
    return set(range(offset // G, (offset + length - 1) // G + 1)) if length else set()


def differing(a: bytes, b: bytes) -> Set[int]:
    n = max(len(a), len(b))
    a, b = a.ljust(n, b"\0"), b.ljust(n, b"\0")
    return {i // G for i in range(0, n, G) if a[i:i + G] != b[i:i + G]}


def decode(bitmap_b64: str) -> Set[int]:
    return set(cbtlog.block_indices(base64.b64decode(bitmap_b64)))


@dataclass
class Model:
    content: bytearray
    #: (snapshot uuid, content at that moment, index into `touched_log`)
    snapshots: List[Tuple[str, bytes, int]] = field(default_factory=list)
    #: blocks touched by each write, in order
    touched_log: List[Set[int]] = field(default_factory=list)
    destroyed: Set[str] = field(default_factory=set)
    #: what a reset-on-boot brings back: the content at the last split of the leaf
    reset_to: bytes = b""
    persistent: bool = True

    def touched_between(self, i: int, j: int) -> Set[int]:
        out: Set[int] = set()
        for s in self.touched_log[i:j]:
            out |= s
        return out


class Harness:
    def __init__(self, path: str) -> None:
        self.sr = FileSR(path, sr=str(uuid.uuid4()))
        self.sr.create_sr()
        self.sr.attach()
        self.vdi = self.sr.create(3 * MiB + 4096)
        self.model = Model(bytearray(self.sr.stat(self.vdi)["virtual_size"]))
        cbt.enable(self.engine(), self.vdi)

    def engine(self):  # type: ignore[no-untyped-def]
        return self.sr.driver.engine_for(self.sr.sr)

    def write(self, where: float, length: int, seed: int) -> None:
        size = len(self.model.content)
        offset = min(int(where * size), size - 1)
        length = max(1, min(length, size - offset))
        data = pattern(seed, length)
        self.sr.write(self.vdi, offset, data)
        self.model.content[offset:offset + length] = data
        self.model.touched_log.append(blocks_of_write(offset, length))

    def snapshot(self) -> None:
        snap = self.sr.snapshot(self.vdi)
        self.model.snapshots.append((snap, bytes(self.model.content), len(self.model.touched_log)))
        self.model.reset_to = bytes(self.model.content)

    def clone(self) -> None:
        self.sr.clone(self.vdi)
        self.model.reset_to = bytes(self.model.content)

    def set_persistent(self, persistent: bool) -> None:
        self.sr.v("VDI.set_persistent", vdi=self.vdi, persistent=persistent)
        if not persistent and self.model.persistent:
            self.model.reset_to = bytes(self.model.content)  # a split: the content it resets to from now on
        self.model.persistent = persistent

    def reboot(self) -> None:
        """epoch_begin: a non-persistent VDI drops what was written since its last split."""
        self.sr.v("VDI.epoch_begin", vdi=self.vdi)
        if not self.model.persistent:
            self.model.content[:len(self.model.reset_to)] = self.model.reset_to

    def resize(self, extra: int) -> None:
        new = self.sr.v("VDI.resize", vdi=self.vdi, new_size=len(self.model.content) + extra)
        self.model.content.extend(bytes(new - len(self.model.content)))

    def drop_snapshot(self, which: float, data_only: bool) -> None:
        alive = [s for s, _, _ in self.model.snapshots if s not in self.model.destroyed]
        if not alive:
            return
        snap = alive[min(int(which * len(alive)), len(alive) - 1)]
        if data_only:
            cbt.data_destroy(self.engine(), snap)
        else:
            self.sr.v("VDI.destroy", vdi=snap)
        self.model.destroyed.add(snap)
        if not data_only:  # a destroyed snapshot cannot be named any more; keep the model's list of nameable ones
            self.model.snapshots = [t for t in self.model.snapshots if t[0] != snap]

    def check(self) -> None:
        engine = self.engine()
        snaps = self.model.snapshots
        now = (self.vdi, bytes(self.model.content), len(self.model.touched_log))
        for i, (a, content_a, at_a) in enumerate(snaps):
            for b, content_b, at_b in snaps[i + 1:] + [now]:
                got = cbt.list_changed_blocks(engine, a, b)
                assert got["granularity"] == G
                reported = decode(got["bitmap"])
                must = differing(content_a, content_b)
                may = self.model.touched_between(at_a, at_b)
                assert must <= reported, (a, b, sorted(must - reported))
                assert reported <= may, (a, b, sorted(reported - may))
        for snap, content, _ in snaps:
            if snap not in self.model.destroyed:
                assert self.sr.read_all(snap) == content
        assert self.sr.read_all(self.vdi) == bytes(self.model.content)


ops = st.one_of(
    st.tuples(st.just("write"), st.floats(0, 1), st.one_of(st.integers(1, 600), st.integers(1, 300_000)),
              st.integers(0, 10**6)),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("clone")),
    st.tuples(st.just("gc")),
    st.tuples(st.just("resize"), st.integers(1, 200_000)),
    st.tuples(st.just("drop"), st.floats(0, 1), st.booleans()),
    st.tuples(st.just("persistent"), st.booleans()),
    st.tuples(st.just("reboot")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(ops, min_size=1, max_size=18))
def test_changed_blocks_follow_the_model(env, tmp_path, steps) -> None:
    h = Harness(str(tmp_path / uuid.uuid4().hex))
    h.snapshot()
    for step in steps:
        kind = step[0]
        if kind == "write":
            h.write(step[1], step[2], step[3])
        elif kind == "snapshot":
            h.snapshot()
        elif kind == "clone":
            h.clone()
        elif kind == "persistent":
            h.set_persistent(step[1])
        elif kind == "reboot":
            h.reboot()
        elif kind == "gc":
            h.sr.driver.gc(h.sr.sr)
        elif kind == "resize":
            h.resize(step[1])
        else:
            h.drop_snapshot(step[1], step[2])
    h.sr.driver.gc(h.sr.sr)
    h.check()
    h.sr.assert_consistent()


def test_chain_stays_short_with_snapshot_data_destroy_cycles(fsr: FileSR) -> None:
    """The backup cycle (snapshot, data_destroy the previous one) keeps the VDI at a base copy and a leaf."""
    vdi = fsr.create(4 * MiB)
    engine = fsr.driver.engine_for(fsr.sr)
    cbt.enable(engine, vdi)
    prev = fsr.snapshot(vdi)
    for n in range(5):
        fsr.write(vdi, n * 70_000, b"x" * 1000)
        snap = fsr.snapshot(vdi)
        assert decode(cbt.list_changed_blocks(engine, prev, snap)["bitmap"]) == blocks_of_write(n * 70_000, 1000)
        cbt.data_destroy(engine, prev)
        fsr.driver.gc(fsr.sr)
        prev = snap
    assert fsr.document().depth(vdi) <= 2
    fsr.assert_consistent()


def test_extent_and_bit_order(fsr: FileSR) -> None:
    vdi = fsr.create(4 * MiB)
    engine = fsr.driver.engine_for(fsr.sr)
    cbt.enable(engine, vdi)
    s1 = fsr.snapshot(vdi)
    fsr.write(vdi, 0, b"a")          # block 0
    fsr.write(vdi, 9 * G + 5, b"b")  # block 9
    s2 = fsr.snapshot(vdi)
    whole = base64.b64decode(cbt.list_changed_blocks(engine, s1, s2)["bitmap"])
    assert len(whole) == 4 * MiB // G // 8
    assert whole[:2] == bytes([0x80, 0x40])  # most significant bit first, as sm encodes it
    part = cbt.list_changed_blocks(engine, s1, s2, 8 * G + 100, G)  # widened to blocks 8 and 9
    assert base64.b64decode(part["bitmap"]) == bytes([0x40])
    assert cbt.whole_bitmap(engine, s1, s2) == base64.b64encode(whole).decode()


def test_refusals(fsr: FileSR) -> None:
    engine = fsr.driver.engine_for(fsr.sr)
    raw = fsr.create(MiB, sm_config={"type": "raw"})
    with pytest.raises(Backend_error, match="raw"):
        cbt.enable(engine, raw)
    vdi = fsr.create(MiB)
    snap = fsr.snapshot(vdi)
    with pytest.raises(Backend_error, match="snapshot"):
        cbt.enable(engine, snap)
    with pytest.raises(Backend_error, match="no changed-block tracking record"):
        cbt.list_changed_blocks(engine, snap, vdi)
    with pytest.raises(Backend_error, match="not a snapshot"):
        cbt.data_destroy(engine, vdi)
    cbt.enable(engine, vdi)
    s1 = fsr.snapshot(vdi)
    with pytest.raises(Backend_error, match="same VDI"):
        cbt.list_changed_blocks(engine, s1, s1)
    cbt.disable(engine, vdi)
    with pytest.raises(Backend_error, match="off"):
        cbt.list_changed_blocks(engine, s1, vdi)
    cbt.enable(engine, vdi)
    s2 = fsr.snapshot(vdi)
    with pytest.raises(Backend_error, match="off between"):
        cbt.list_changed_blocks(engine, s1, s2)
    cbt.data_destroy(engine, s1)
    for verb, args in (("VDI.attach", {"dp": "d", "vdi": s1, "read_write": False}),
                       ("VDI.clone", {"vdi_info": fsr.stat(s1)})):
        with pytest.raises(Backend_error, match="data_destroy"):
            fsr.v(verb, **args)


def test_compare(fsr: FileSR) -> None:
    engine = fsr.driver.engine_for(fsr.sr)
    vdi = fsr.create(4 * MiB)
    fsr.write(vdi, 0, b"a" * 512)
    snap = fsr.snapshot(vdi)
    fsr.write(vdi, 3 * G, b"b" * 512)
    assert decode(cbt.compare(engine, vdi, snap)) == {3}
    other = fsr.create(4 * MiB)
    assert decode(cbt.compare(engine, other, vdi)) == set()  # unrelated: what `other` holds, nothing yet
    # unrelated the other way: every block of vdi's chain that holds data (a dynamic base marks whole 2 MiB blocks)
    assert decode(cbt.compare(engine, vdi, other)) == set(range(32))
