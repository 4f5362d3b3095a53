"""Crash safety: cut coalesce, grow and allocating writes after every single write and check what survives.

A crashed image must open (falling back to the backup footer when needed) and read, per sector, either the old or
the new content, never anything else; the chain view above a crashed coalesce target must not change at all.
"""

import contextlib

import pytest
from vhd_testlib import CrashAfter, CrashingBacking, DictResolver, rand_bytes

from smapi.vhd import MemoryBacking, VhdImage
from smapi.vhd.chain import Chain, build_chain
from smapi.vhd.check import check_image
from smapi.vhd.coalesce import coalesce_images
from smapi.vhd.constants import KiB
from smapi.vhd.create import create_child_on, create_sparse_on
from smapi.vhd.repair import repair_image
from smapi.vhd.resize import resize_image

BS = 16 * KiB
SIZE = 256 * KiB


def read_image(raw: bytes, parents: "dict[str, bytes] | None" = None) -> bytes:
    res = DictResolver()
    for name, data in (parents or {}).items():
        res.stores[name] = MemoryBacking(data, writable=False, name=name)
    img = VhdImage.open(MemoryBacking(raw, writable=False, name="crashed"))
    chain = build_chain(img, res)
    return chain.read(0, chain.size)


def assert_old_or_new(got: bytes, old: bytes, new: bytes) -> None:
    assert len(got) == len(old) == len(new)
    for s in range(0, len(got), 512):
        g = got[s : s + 512]
        assert g == old[s : s + 512] or g == new[s : s + 512], f"sector {s // 512} is neither old nor new"


def assert_repairable(raw: bytes, parents: "dict[str, bytes] | None" = None) -> None:
    content = read_image(raw, parents)
    store = MemoryBacking(raw, name="crashed")
    img = VhdImage.open(store, writable=True)
    repair_image(img)
    res = DictResolver()
    for name, data in (parents or {}).items():
        res.stores[name] = MemoryBacking(data, writable=False, name=name)
    rep = check_image(VhdImage.open(MemoryBacking(bytes(store.buf), writable=False)), resolver=res)
    assert rep.ok, rep.errors
    assert read_image(bytes(store.buf), parents) == content


def _pair():
    """Parent (dynamic, partly allocated) and child with full, partial and fresh blocks."""
    p = MemoryBacking(name="p.vhd")
    create_sparse_on(p, SIZE, block_size=BS)
    pimg = VhdImage.open(p, writable=True)
    pimg.write_at(0, rand_bytes(1, 100 * KiB))
    pimg.commit()
    c = MemoryBacking(name="c.vhd")
    create_child_on(c, pimg, "p.vhd")
    cimg = VhdImage.open(c, writable=True)
    cimg.write_at(16 * KiB, rand_bytes(2, 16 * KiB))  # full block over an allocated parent block
    cimg.write_at(40 * KiB, rand_bytes(3, 3 * KiB))  # partial, over allocated
    cimg.write_at(130 * KiB + 512, rand_bytes(4, 2 * KiB))  # partial, parent block unallocated
    cimg.write_at(192 * KiB, rand_bytes(5, 48 * KiB))  # fresh full blocks
    cimg.commit()
    return bytes(p.buf), bytes(c.buf)


def _count_writes(fn) -> int:
    for budget in range(0, 10_000):
        try:
            fn(budget)
            return budget
        except CrashAfter:
            continue
    raise AssertionError("never finished")


def test_coalesce_cut_at_every_write():
    parent0, child = _pair()
    old = read_image(parent0)
    view = read_image(child, {"p.vhd": parent0})

    def run(budget: int) -> bytes:
        store = CrashingBacking(parent0, budget, name="p.vhd")
        try:
            coalesce_images(VhdImage.open(MemoryBacking(child, writable=False)), VhdImage.open(store, writable=True),
                            batch_bytes=BS)
        finally:
            run.last = bytes(store.buf)  # type: ignore[attr-defined]
        return run.last  # type: ignore[attr-defined]

    total = _count_writes(run)
    assert total > 5
    new = read_image(run.last)  # type: ignore[attr-defined]
    assert new == view
    for budget in range(total):
        with contextlib.suppress(CrashAfter):
            run(budget)
        raw = run.last  # type: ignore[attr-defined]
        assert_old_or_new(read_image(raw), old, new)
        assert read_image(child, {"p.vhd": raw}) == view  # the chain above never changes
        assert_repairable(raw)


@pytest.mark.parametrize("room", [False, True])
def test_grow_cut_at_every_write(room):
    p = MemoryBacking(name="g.vhd")
    create_sparse_on(p, SIZE, block_size=BS, max_size=4 * SIZE if room else None)
    img = VhdImage.open(p, writable=True)
    img.write_at(0, rand_bytes(9, SIZE))
    img.commit()
    base = bytes(p.buf)
    old = read_image(base)
    new_size = 3 * SIZE

    def run(budget: int) -> None:
        store = CrashingBacking(base, budget)
        try:
            resize_image(VhdImage.open(store, writable=True), new_size)
        finally:
            run.last = bytes(store.buf)  # type: ignore[attr-defined]

    total = _count_writes(run)
    assert read_image(run.last) == old + bytes(new_size - SIZE)  # type: ignore[attr-defined]
    for budget in range(total):
        with contextlib.suppress(CrashAfter):
            run(budget)
        got = read_image(run.last)  # type: ignore[attr-defined]
        assert len(got) in (SIZE, new_size)
        assert got == (old if len(got) == SIZE else old + bytes(new_size - SIZE))
        assert_repairable(run.last)  # type: ignore[attr-defined]
        # The survivor stays writable: a write into a new block lands and reads back.
        store = MemoryBacking(run.last)  # type: ignore[attr-defined]
        ch = Chain([VhdImage.open(store, writable=True)])
        ch.write(ch.size - 1000, b"after crash")
        assert read_image(bytes(store.buf))[-1000:-989] == b"after crash"


def test_allocating_writes_cut_at_every_write():
    parent0, child0 = _pair()
    old = read_image(child0, {"p.vhd": parent0})
    writes = [(5 * KiB + 100, rand_bytes(11, 20 * KiB)), (100 * KiB, rand_bytes(12, 70 * KiB)),
              (SIZE - 3000, rand_bytes(13, 3000))]
    expect = bytearray(old)
    for off, d in writes:
        expect[off : off + len(d)] = d

    def run(budget: int) -> None:
        store = CrashingBacking(child0, budget)
        res = DictResolver()
        res.stores["p.vhd"] = MemoryBacking(parent0, writable=False)
        try:
            ch = build_chain(VhdImage.open(store, writable=True), res)
            with ch.batch():
                for off, d in writes:
                    ch.write(off, d)
        finally:
            run.last = bytes(store.buf)  # type: ignore[attr-defined]

    total = _count_writes(run)
    assert read_image(run.last, {"p.vhd": parent0}) == expect  # type: ignore[attr-defined]
    for budget in range(total):
        with contextlib.suppress(CrashAfter):
            run(budget)
        got = read_image(run.last, {"p.vhd": parent0})  # type: ignore[attr-defined]
        assert_old_or_new(got, old, bytes(expect))
        assert_repairable(run.last, {"p.vhd": parent0})  # type: ignore[attr-defined]
