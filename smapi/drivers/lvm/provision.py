"""How big a VDI's LV must be: thick (room for every block of the VHD) or thin (what the VHD uses, grown on demand).

The arithmetic follows the classic LVHD rules (``lvhdutil.calcSizeVHDLV``): an empty VHD's metadata (footer copy,
header, BAT at 4 bytes per block, batmap at one bit per block, parent locators), plus per allocated block its data
and a sector bitmap that blktap pads so block data stays 4 KiB aligned, plus the primary footer; everything rounded
up to whole extents. The bounds here are deliberately a little generous: running out of LV in the middle of a
guest write costs an lvextend, running out in a thick SR must never happen.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1 << 10
MiB = 1 << 20
SECTOR = 512
VHD_BLOCK = 2 * MiB
#: per-block bitmap including the padding that keeps block data 4 KiB aligned
BLOCK_BITMAP = 4 * KiB
#: footer copy + dynamic header + batmap header + up to three parent locators, with room to spare
FIXED_METADATA = 64 * KiB
#: the smallest step a thin LV grows by: fewer lvextend calls for sequential writers
THIN_GROWTH_STEP = 16 * MiB

PROVISIONING = ("thick", "thin")


def round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def vhd_metadata_size(entries: int) -> int:
    """Bytes of metadata in front of the first block of a VHD whose BAT has ``entries`` slots."""
    bat = round_up(entries * 4, SECTOR)
    batmap = round_up(round_up(entries, 8) // 8, SECTOR)
    return round_up(FIXED_METADATA + bat + batmap, 4 * KiB)


def vhd_full_size(virtual_size: int, *, block_size: int = VHD_BLOCK, entries: int = 0) -> int:
    """Bytes a VHD occupies with every block allocated (its largest possible size), footer included.

    ``entries`` is the BAT size when it was made larger than the virtual size needs (room for online growth).
    """
    blocks = -(-virtual_size // block_size)
    meta = vhd_metadata_size(max(entries, blocks))
    stride = round_up(block_size + BLOCK_BITMAP, 4 * KiB)
    return meta + blocks * stride + SECTOR


def thick_lv_size(virtual_size: int, extent_size: int, *, block_size: int = VHD_BLOCK, entries: int = 0) -> int:
    """LV size of a fully inflated VHD leaf. One extra sector keeps the LV-end footer copy apart from data."""
    return round_up(vhd_full_size(virtual_size, block_size=block_size, entries=entries) + SECTOR, extent_size)


def deflated_lv_size(physical_size: int, extent_size: int) -> int:
    """LV size of a VHD that will not grow again (a snapshot's parent): its bytes, in whole extents."""
    return max(extent_size, round_up(physical_size, extent_size))


def raw_lv_size(virtual_size: int, extent_size: int) -> int:
    return max(extent_size, round_up(virtual_size, extent_size))


@dataclass(frozen=True)
class GrowthPolicy:
    """When a write needs more LV than there is, how much to ask lvm for."""

    extent_size: int
    step: int = THIN_GROWTH_STEP
    #: never grow a VHD's LV beyond this (its fully inflated size); 0 = no cap
    cap: int = 0

    def target(self, needed: int, current: int) -> int:
        """New LV size for a write ending at ``needed`` bytes when the LV has ``current``: at least one step
        (or 1/8 of the current size, for large VDIs) beyond the need, so sequential writers rarely wait."""
        want = max(needed, current + max(self.step, current // 8))
        if self.cap:
            want = min(want, max(self.cap, needed))
        return round_up(want, self.extent_size)
