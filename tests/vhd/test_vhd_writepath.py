"""The write path's per-image shortcuts (block placement check remembered, bitmap compare on the touched bytes)
must never change what a write does: corrupt placements are still refused, bitmaps still get dirty when needed."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vhd_testlib import MemChain, rand_bytes

from smapi.vhd import MemoryBacking, VhdImage
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
