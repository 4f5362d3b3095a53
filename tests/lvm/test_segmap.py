"""I/O through the segment map: the same bytes an activated LV would hold, checked against the PV itself and
against a pseudo-activated loop device (offset/sizelimit) for a single-segment LV."""

from __future__ import annotations

import os

import pytest

from smapi.drivers.lvm import loopdev
from smapi.drivers.lvm.access import SegmentMapAccess
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.segmap import Extent, OutsideExtent, SegmentMapBacking, UnsupportedSegment, build_map, split

MiB = 1 << 20


def pv_read(device: str, offset: int, length: int) -> bytes:
    fd = os.open(device, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def lvcreate(lvm: Lvm, vg: str, name: str, size: str) -> None:
    lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-y", "-L", size, "-n", name, vg)


@pytest.fixture
def two_segments(lvm: Lvm, vg: str) -> SegmentMapAccess:
    """fragA = 8 MiB, then fragB = 8 MiB, then fragA grows by 8 MiB: fragA has two segments with fragB between."""
    lvcreate(lvm, vg, "fragA", "8m")
    lvcreate(lvm, vg, "fragB", "8m")
    lvm.run("lvextend", "-L", "16m", f"{vg}/fragA")
    return SegmentMapAccess(lvm, vg)


def test_build_map_formula() -> None:
    rows = [{"seg_start_pe": "2", "seg_pe_ranges": "/dev/loop9:75-76", "segtype": "linear"},
            {"seg_start_pe": "0", "seg_pe_ranges": "/dev/loop9:0-1", "segtype": "linear"}]
    ext = 4 * MiB
    assert build_map(rows, {"/dev/loop9": MiB}, ext) == [
        Extent(0, "/dev/loop9", MiB, 8 * MiB), Extent(8 * MiB, "/dev/loop9", MiB + 75 * ext, 8 * MiB)]
    # adjacent on the PV too: one extent
    rows2 = [{"seg_start_pe": "0", "seg_pe_ranges": "/dev/loop9:0-1"},
             {"seg_start_pe": "2", "seg_pe_ranges": "/dev/loop9:2-4"}]
    assert build_map(rows2, {"/dev/loop9": MiB}, ext) == [Extent(0, "/dev/loop9", MiB, 20 * MiB)]
    with pytest.raises(UnsupportedSegment):
        build_map([{"seg_start_pe": "0", "seg_pe_ranges": "/dev/loop9:0-1", "segtype": "striped"}], {}, ext)


def test_split_at_extent_boundaries() -> None:
    m = [Extent(0, "a", 100, 10), Extent(10, "b", 500, 10)]
    assert [(e.pv, at, n) for e, at, n in split(m, 5, 10)] == [("a", 0, 5), ("b", 5, 5)]
    assert [(e.pv, at, n) for e, at, n in split(m, 12, 3)] == [("b", 0, 3)]


def test_multi_segment_write_matches_the_pv(two_segments: SegmentMapAccess, loop: str) -> None:
    acc = two_segments
    extents = acc.extents("fragA")
    assert len(extents) == 2 and extents[0].length == 8 * MiB and extents[1].lv_offset == 8 * MiB
    b_before = pv_read(loop, acc.extents("fragB")[0].pv_offset, 8 * MiB)
    data = os.urandom(16 * MiB)
    with acc.open("fragA", writable=True) as lv:
        assert lv.size() == 16 * MiB
        lv.pwrite(data, 0)
        lv.pwrite(b"X" * 200, 8 * MiB - 100)  # straddles the boundary
        lv.flush()
    expect = bytearray(data)
    expect[8 * MiB - 100 : 8 * MiB + 100] = b"X" * 200
    # raw reads of the PV at the offsets the formula gives
    raw = b"".join(pv_read(loop, e.pv_offset, e.length) for e in extents)
    assert raw == bytes(expect)
    with acc.open("fragA") as lv:
        assert lv.pread(16 * MiB, 0) == bytes(expect)
        buf = bytearray(1000)
        assert lv.readinto(memoryview(buf), 8 * MiB - 500) == 1000
        assert bytes(buf) == bytes(expect[8 * MiB - 500 : 8 * MiB + 500])
        assert lv.pread(10, 16 * MiB - 5) == bytes(expect[-5:])  # short only at the end
    # the LV in between is untouched
    assert pv_read(loop, acc.extents("fragB")[0].pv_offset, 8 * MiB) == b_before


def test_single_segment_matches_pseudo_activation(lvm: Lvm, vg: str, loop: str) -> None:
    lvcreate(lvm, vg, "one", "12m")
    acc = SegmentMapAccess(lvm, vg)
    (ext,) = acc.extents("one")
    data = os.urandom(12 * MiB)
    with acc.open("one", writable=True) as lv:
        lv.pwritev([data[: 5 * MiB], data[5 * MiB :]], 0)
    dev = loopdev.attach(loop, offset=ext.pv_offset, sizelimit=ext.length, read_only=True)
    try:
        assert pv_read(dev, 0, 13 * MiB) == data
    finally:
        loopdev.detach(dev)


def test_resize_reloads_the_map_and_zeroes_new_bytes(two_segments: SegmentMapAccess, loop: str) -> None:
    acc = two_segments
    # Put garbage where the next extents will come from, as a deleted LV would leave it.
    acc.lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-y", "-L", "8m", "-n", "junk", acc.vg)
    with acc.open("junk", writable=True) as j:
        j.pwrite(b"\xee" * 8 * MiB, 0)
    acc.lvm.run("lvremove", "-f", f"{acc.vg}/junk")
    with acc.open("fragB", writable=True) as lv:
        lv.pwrite(b"keep", 0)
        lv.resize(16 * MiB)
        assert lv.size() == 16 * MiB
        assert lv.pread(8 * MiB, 8 * MiB) == bytes(8 * MiB)
        assert lv.pread(4, 0) == b"keep"
        lv.resize(4 * MiB)
        assert lv.size() == 4 * MiB
    (row,) = acc.lvm.lvs(["lv_size"], f"{acc.vg}/fragB")
    assert int(row["lv_size"]) == 4 * MiB


def test_write_past_the_end_is_refused(lvm: Lvm, vg: str) -> None:
    lvcreate(lvm, vg, "small", "4m")
    with SegmentMapAccess(lvm, vg).open("small", writable=True) as lv, pytest.raises(OSError):
        lv.pwrite(b"x", 4 * MiB)
    with SegmentMapAccess(lvm, vg).open("small") as lv, pytest.raises(Exception, match="read-only"):
        lv.pwrite(b"x", 0)


def test_a_map_never_writes_into_the_pv_label_or_metadata_area(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A wrong pe_start or a stale map would silently overwrite lvm's label/metadata (the first MiB) and make the
    volume group vanish: it is refused before anything is written, naming the LV."""
    pv = tmp_path / "pv"
    pv.write_bytes(bytes(4 * MiB))
    with pytest.raises(ValueError, match="pe_start"):
        build_map([{"seg_start_pe": "0", "seg_pe_ranges": f"{pv}:0-0"}], {str(pv): 0}, MiB)
    with pytest.raises(OutsideExtent):  # an extent below its PV's data offset
        SegmentMapBacking("vg/bad", [Extent(0, str(pv), 4096, MiB, MiB)], writable=True)
    floorless = SegmentMapBacking("vg/old", [Extent(0, str(pv), 0, MiB)], writable=True)  # no pe_start known
    with pytest.raises(OutsideExtent, match="vg/old"):
        floorless.pwrite(b"x" * 512, 0)  # the label sectors are never an LV's
    with pytest.raises(OutsideExtent):
        floorless.zero(0, 4096)
    floorless.close()
    (good,) = build_map([{"seg_start_pe": "0", "seg_pe_ranges": f"{pv}:0-0"}], {str(pv): MiB}, MiB)
    b = SegmentMapBacking("vg/ok", [good], writable=True)
    b.pwrite(b"y" * 512, 0)
    b.close()
    data = pv.read_bytes()
    assert data[:MiB] == bytes(MiB) and data[MiB:MiB + 512] == b"y" * 512
