"""The write path's per-image shortcuts (block placement check remembered, bitmap compare on the touched bytes)
must never change what a write does: corrupt placements are still refused, bitmaps still get dirty when needed."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vhd_testlib import MemChain, rand_bytes

from smapi.vhd import MemoryBacking, VhdImage
from smapi.vhd.chain import build_chain
from smapi.vhd.constants import SECTOR, KiB
from smapi.vhd.create import create_sparse_on
from smapi.vhd.errors import CorruptImage

BS = 16 * KiB
SIZE = 8 * BS


def _image() -> VhdImage:
    store = MemoryBacking()
    create_sparse_on(store, SIZE, block_size=BS)
    return VhdImage.open(store, writable=True)


def test_block_moved_onto_metadata_after_a_checked_write_is_refused():
    img = _image()
    img.write_at(0, bytes(4 * KiB))
    img.write_at(4 * KiB, bytes(4 * KiB))  # second write: the placement answer is remembered
    assert img.header is not None
    # A BAT entry now pointing at the BAT itself (as a forged or torn image would) must be checked again.
    img.bat[0] = img.header.table_offset // SECTOR
    with pytest.raises(CorruptImage, match="overlaps the BAT"):
        img.write_at(0, bytes(SECTOR))


def test_metadata_moved_onto_a_checked_block_is_refused():
    img = _image()
    img.write_at(0, bytes(4 * KiB))
    img.write_at(4 * KiB, bytes(4 * KiB))  # checked and remembered
    data_off = img.block_data_offset(0)
    assert data_off is not None and img.header is not None
    # Same BAT entry, but the header now places the BAT over that block: the remembered answer is stale.
    img.header = img.header.with_(table_offset=data_off)
    with pytest.raises(CorruptImage, match="overlaps the BAT"):
        img.write_at(0, bytes(SECTOR))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, SIZE // SECTOR - 1), st.integers(1, 40), st.integers(0, 2**31)),
                min_size=1, max_size=30))
def test_differencing_bitmaps_follow_every_write(writes):
    """Sector-level writes into a child: after commit and reopen, exactly the written sectors are marked and hold
    the data (the dirty-bitmap decision only compares the touched bytes now)."""
    mc = MemChain(SIZE, BS)
    mc.snapshot()
    model = bytearray(SIZE)
    marked = bytearray(SIZE // SECTOR)
    chain = mc.chain
    assert chain is not None
    for sec, count, seed in writes:
        count = min(count, SIZE // SECTOR - sec)
        data = rand_bytes(seed, count * SECTOR)
        chain.leaf.write_at(sec * SECTOR, data)
        model[sec * SECTOR : (sec + count) * SECTOR] = data
        marked[sec : sec + count] = b"\x01" * count
    chain.leaf.commit()
    mc.reopen()
    chain = mc.chain
    assert chain is not None
    leaf = chain.leaf
    for blk in range(SIZE // BS):
        per = BS // SECTOR
        want = marked[blk * per : (blk + 1) * per]
        if leaf.block_data_offset(blk) is None:
            assert not any(want)
            continue
        bits = leaf.bitmap(blk)
        got = bytes(1 if bits[i >> 3] & (0x80 >> (i & 7)) else 0 for i in range(per))
        assert got == bytes(want)
    for i in range(SIZE // SECTOR):
        if marked[i]:
            assert chain.read(i * SECTOR, SECTOR) == model[i * SECTOR : (i + 1) * SECTOR]


class OrderLog(MemoryBacking):
    """Records every mutating call and barrier: ("w", offset, length), ("r", size), ("f",)."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.log: list = []

    def pwrite(self, data, offset):  # type: ignore[override]
        self.log.append(("w", offset, len(data)))
        super().pwrite(data, offset)

    def pwritev(self, buffers, offset):  # type: ignore[override]
        self.log.append(("w", offset, sum(len(b) for b in buffers)))
        for b in buffers:
            MemoryBacking.pwrite(self, b, offset)
            offset += len(b)

    def resize(self, size):  # type: ignore[override]
        self.log.append(("r", size))
        super().resize(size)

    def flush(self) -> None:
        self.log.append(("f",))


def _ordered_chain(differencing: bool):
    mc = MemChain(SIZE, BS)
    if differencing:
        mc.snapshot()
    assert mc.chain is not None
    name = mc.names[-1]
    mc.chain.close()
    mc.chain = None
    mc.resolver.stores[name] = OrderLog(bytes(mc.resolver.stores[name].buf))
    return mc, mc.reopen(), mc.resolver.stores[name]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 3 * BS),
                                                   st.integers(0, 2**31)), min_size=0, max_size=6),
                               min_size=1, max_size=5))
def test_flush_orders_data_before_metadata_and_ends_with_a_barrier(differencing, rounds):
    """Each round: batched writes, then Chain.flush. The flush's first mutating step comes after a barrier (data
    before the BAT/bitmaps/footer that point at it), every write is followed by a barrier before flush returns,
    and no barrier is issued twice in a row (the skipped ones were redundant). What is on disk after each flush
    alone (a copy of the store, no caches) reads like the model."""
    mc, chain, store = _ordered_chain(differencing)
    leaf_name = mc.names[-1]
    model = bytearray(chain.read(0, SIZE))
    for writes in rounds:
        with chain.batch():
            for off, n, seed in writes:
                n = min(n, SIZE - off)
                data = rand_bytes(seed, n)
                chain.write(off, data)
                model[off : off + n] = data
            store.log.clear()
            chain.flush()
        ops = store.log
        assert ops and ops[-1] == ("f",), ops
        if len(ops) > 1:
            assert ops[0] == ("f",), ops  # data (written before the flush) is durable before any metadata write
        assert all(not (a == ("f",) and b == ("f",)) for a, b in zip(ops, ops[1:])), ops
        copy = VhdImage.open(MemoryBacking(bytes(store.buf)), name=leaf_name, writable=False)
        with build_chain(copy, mc.resolver) as on_disk:
            assert on_disk.read(0, SIZE) == model
    chain.close()


def test_flush_of_an_overwrite_is_one_barrier():
    """Rewriting mapped sectors changes no metadata: the NBD flush (or FUA write) behind it is one fdatasync."""
    mc, chain, store = _ordered_chain(False)
    with chain.batch():
        chain.write(0, bytes(BS))
        chain.flush()
        chain.write(512, b"x" * 1024)
        store.log.clear()
        chain.flush()
        assert store.log == [("f",)]
        store.log.clear()
        chain.flush()  # nothing pending: still a barrier, once
        assert store.log == [("f",)]
    chain.close()
