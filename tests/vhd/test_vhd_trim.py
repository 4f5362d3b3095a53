"""smapi.vhd.trim: what a trim releases (whole 4 KiB units of the leaf's own data, metadata untouched) and how the
image reads afterwards. The datapath's trims (C and Python plugins) are compared in
tests/datapath/test_native_trim.py."""

from __future__ import annotations

import os

import pytest

import smapi.vhd as vhd
from smapi.vhd import MemoryBacking
from smapi.vhd.errors import OutOfRange, ReadOnlyImage
from smapi.vhd.trim import TRIM_UNIT, trim, trim_ranges

MiB = 1 << 20
BLOCK = 2 * MiB


def _blocks(tmp_path, name: str = "a.vhd", size: int = 4 * BLOCK) -> str:
    path = str(tmp_path / name)
    vhd.create_dynamic(path, size)
    return path


def test_ranges_are_whole_units_of_blocks_the_leaf_maps(tmp_path) -> None:
    path = _blocks(tmp_path)
    with vhd.open_chain(path, writable=True) as chain:
        chain.write(0, b"\x01" * BLOCK)
        chain.write(2 * BLOCK, b"\x02" * BLOCK)
        img = chain.leaf
        d0, d2 = img.block_data_offset(0), img.block_data_offset(2)
        assert d0 is not None and d2 is not None and d0 % TRIM_UNIT == 0
        # block 0 from byte 100 (its first unit is partial), block 1 unmapped, block 2 whole, block 3 unmapped
        assert trim_ranges(img, 100, 4 * BLOCK - 100) == [(d0 + TRIM_UNIT, BLOCK - TRIM_UNIT), (d2, BLOCK)]
        assert trim_ranges(img, 4096 + 1, 4096) == []  # no whole unit inside


def test_trim_reads_zeros_where_the_leaf_had_sectors_and_the_parent_elsewhere(tmp_path) -> None:
    """A differencing leaf holding a few sectors of a block over a parent with data: the trim of the whole block
    makes those sectors read zeros (never the parent's bytes), the others keep reading the parent; the bitmap is
    unchanged and the file is smaller on disk."""
    base = _blocks(tmp_path, "base.vhd")
    with vhd.open_chain(base, writable=True) as chain:
        chain.write(0, b"\xa5" * 4 * BLOCK)
    leaf = str(tmp_path / "leaf.vhd")
    vhd.snapshot(base, leaf)
    data = os.urandom(BLOCK)
    with vhd.open_chain(leaf, writable=True) as chain:
        chain.write(0, data[:8192])
        chain.write(BLOCK, data)
    os.sync()
    before = os.stat(leaf).st_blocks * 512
    with vhd.open_image(leaf) as img:
        bitmaps = [bytes(img.bitmap(0)), bytes(img.bitmap(1))]
    with vhd.open_chain(leaf, writable=True) as chain:
        assert trim(chain, 0, 2 * BLOCK - 4096) == 2 * BLOCK - 4096
        got = chain.read(0, 3 * BLOCK)
    assert got[:8192] == bytes(8192)
    assert got[8192:BLOCK] == b"\xa5" * (BLOCK - 8192)
    assert got[BLOCK : 2 * BLOCK - 4096] == bytes(BLOCK - 4096)
    assert got[2 * BLOCK - 4096 : 2 * BLOCK] == data[-4096:]
    assert got[2 * BLOCK :] == b"\xa5" * BLOCK
    with vhd.open_image(leaf) as img:
        assert [bytes(img.bitmap(0)), bytes(img.bitmap(1))] == bitmaps
    assert vhd.check(leaf).ok
    assert before - os.stat(leaf).st_blocks * 512 >= BLOCK  # at least the fully written block's data


def test_fixed_leaf_releases_data_units_but_never_the_footer(tmp_path) -> None:
    path = str(tmp_path / "f.vhd")
    size = BLOCK + 1024  # ends in a partial unit, followed by the footer
    vhd.create_fixed(path, size)
    data = os.urandom(size)
    with vhd.open_chain(path, writable=True) as chain:
        chain.write(0, data)
        assert trim(chain, 0, size) == BLOCK
        assert chain.read(0, size) == bytes(BLOCK) + data[BLOCK:]
    assert vhd.check(path).ok
    assert os.path.getsize(path) == size + 512


def test_blocks_over_metadata_or_past_the_file_are_left_alone(tmp_path) -> None:
    path = _blocks(tmp_path)
    with vhd.open_chain(path, writable=True) as chain:
        chain.write(0, b"\x01" * BLOCK)
        img = chain.leaf
        img.bat[1] = 1  # a corrupt entry: its bitmap would be the header
        img.bat[2] = 0x7FFFFFF0  # past the end of the file
        assert trim_ranges(img, BLOCK, 2 * BLOCK) == []
        img.bat[1] = img.bat[2] = 0xFFFFFFFF  # not committed: the file never saw them


def test_a_store_without_hole_punching_changes_nothing() -> None:
    backing = MemoryBacking()
    vhd.create_dynamic(backing, 2 * BLOCK)
    with vhd.open_chain(backing, writable=True) as chain:
        chain.write(0, b"\x07" * BLOCK)
        assert trim(chain, 0, BLOCK) == 0
        assert chain.read(0, BLOCK) == b"\x07" * BLOCK


def test_refused_read_only_and_out_of_range(tmp_path) -> None:
    path = _blocks(tmp_path)
    with vhd.open_chain(path) as chain, pytest.raises(ReadOnlyImage):
        trim(chain, 0, 4096)
    with vhd.open_chain(path, writable=True) as chain, pytest.raises(OutOfRange):
        trim(chain, 4 * BLOCK - 4096, 8192)
