"""Sizes and offsets of the metadata regions, computed the way blktap lays a new image out."""

from dataclasses import dataclass
from typing import List, Tuple

from . import constants as C


def bitmap_bytes(block_size: int) -> int:
    """Per-block sector bitmap size: one bit per sector, rounded up to a whole sector."""
    return C.pad512(C.ceil_div(block_size // C.SECTOR, 8))


def bat_bytes(entries: int) -> int:
    return C.pad512(entries * 4)


def batmap_sectors(entries: int) -> int:
    return max(1, C.ceil_div(C.ceil_div(entries, 8), C.SECTOR))


def aligned_block_sector(end_of_data: int, bitmap_sectors: int) -> int:
    """First sector >= ``end_of_data`` where a block can start so that its *data* is 4 KiB aligned."""
    sec = C.ceil_div(end_of_data, C.SECTOR)
    per = C.DATA_ALIGNMENT // C.SECTOR
    return C.ceil_div(sec + bitmap_sectors, per) * per - bitmap_sectors


def round_size(size: int, block_size: int) -> int:
    """blktap rounds dynamic sizes up to whole blocks (2 MiB by default)."""
    return C.ceil_div(size, block_size) * block_size


@dataclass(frozen=True)
class NewLayout:
    """Where each region of a freshly created dynamic/differencing image goes."""

    table_offset: int
    entries: int
    batmap_header_offset: int
    batmap_offset: int
    batmap_size_sectors: int
    locators: List[Tuple[int, int, bytes, int]]  # (code, offset, payload, space)
    end_of_metadata: int


def plan(entries: int, locator_payloads: List[Tuple[int, bytes]]) -> NewLayout:
    table = C.DEFAULT_TABLE_OFFSET
    bm_hdr = table + bat_bytes(entries)
    bm_off = bm_hdr + C.SECTOR
    bm_secs = batmap_sectors(entries)
    off = bm_off + bm_secs * C.SECTOR
    placed = []
    for code, payload in locator_payloads:
        space = max(C.pad512(len(payload)), C.LOCATOR_RESERVE)
        placed.append((code, off, payload, space))
        off += space
    return NewLayout(table, entries, bm_hdr, bm_off, bm_secs, placed, off)
