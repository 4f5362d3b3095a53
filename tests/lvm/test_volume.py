"""VHD-in-LV conventions: the footer copy at the end of the LV, its repair, and the I/O path selection."""

from __future__ import annotations

import os

import pytest

from smapi.drivers.lvm.access import KernelAccess, SegmentMapAccess, access_for
from smapi.drivers.lvm.lvmcli import device_mapper_available
from smapi.vhd import create_dynamic, info, open_chain
from tests.lvm.conftest import make_sr

MiB = 1 << 20


def test_stale_footer_at_the_lv_end_is_replaced(loop: str) -> None:
    """An lvextend whose process died before refreshing the copy leaves old bytes at the new end of the LV,
    possibly another image's footer (extents are reused, never zeroed): the backup footer at 0 wins."""
    sr = make_sr([loop], "thin")
    sub = sr.substrate()
    with sub.create_volume("VHD-other") as other:
        create_dynamic(other, 8 * MiB)
    with sub.open_volume("VHD-other") as other:
        foreign = other.pread(512, other.size() - 512)
    with sub.create_volume("VHD-mine") as mine:
        create_dynamic(mine, 16 * MiB)
    with sub._open_raw("VHD-mine", True) as raw:
        raw.pwrite(foreign, raw.size() - 512)  # the crash leftover
    with sub.open_volume("VHD-mine") as ro:  # read-only: reads see the right footer, nothing is written
        assert info(ro, count_blocks=False).virtual_size == 16 * MiB
    with sub._open_raw("VHD-mine", False) as raw:
        assert raw.pread(512, raw.size() - 512) == foreign
    with sub.open_volume("VHD-mine", writable=True) as rw:
        chain = open_chain(rw, writable=True)
        chain.write(0, b"\x11" * 4096)
        chain.close()
    with sub._open_raw("VHD-mine", False) as raw:
        tail = raw.pread(512, raw.size() - 512)
        assert tail[:8] == b"conectix" and tail == raw.pread(512, 0)


def test_footer_copy_follows_every_flush(loop: str) -> None:
    sr = make_sr([loop], "thin")
    vdi = sr.vdi(64 * MiB)["vdi"]
    lv = sr.lv_of(vdi)
    sr.write(vdi, 40 * MiB, os.urandom(5 * MiB))  # grows the LV: the copy moves to the new end
    sub = sr.substrate()
    with sub._open_raw(lv, False) as raw:
        assert raw.size() > 4 * MiB
        assert raw.pread(512, raw.size() - 512) == raw.pread(512, 0)


def test_segment_map_is_chosen_without_device_mapper(loop: str) -> None:
    sr = make_sr([loop], "thick")
    access = access_for(sr.lvm(), sr.vg)
    if device_mapper_available():
        pytest.skip("device-mapper works here; the kernel path is used")
    assert isinstance(access, SegmentMapAccess)
    vdi = sr.vdi(8 * MiB)["vdi"]
    assert sr.substrate().volume_path(sr.lv_of(vdi)) == f"/dev/{sr.vg}/VHD-{vdi}"


@pytest.mark.skipif(not device_mapper_available(),
                    reason="no device-mapper in this kernel (/dev/mapper/control): LVs cannot be activated, "
                           "so the kernel I/O path (KernelAccess) cannot run here")
def test_kernel_path_reads_what_the_segment_map_wrote(loop: str) -> None:  # pragma: no cover - needs dm
    sr = make_sr([loop], "thick")
    vdi = sr.vdi(8 * MiB)["vdi"]
    lv = sr.lv_of(vdi)
    kernel = KernelAccess(sr.lvm(), sr.vg)
    with SegmentMapAccess(sr.lvm(), sr.vg).open(lv) as a, kernel.open(lv) as b:
        assert a.pread(MiB, 0) == b.pread(MiB, 0)
    kernel.release(lv)
