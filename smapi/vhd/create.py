"""Write new images in blktap's layout: footer copy, header, BAT, batmap, locators, (blocks), footer.

Creation cost is the BAT bytes only (4 MiB at 2040 GiB), written as one buffer together with the rest of the
metadata; a snapshot (differencing child) is therefore O(1) in the parent's allocated data.
"""

import posixpath
import time
import uuid as uuidlib
from typing import List, Optional, Tuple

from . import constants as C
from . import locators
from .backing import Backing
from .errors import InvalidArgument
from .geometry import geometry_u32
from .image import VhdImage
from .layout import plan, round_size
from .structs import BatmapHeader, Footer, Header, Locator, batmap_checksum

_FF = bytes(b"\xff" * C.pad512(C.ceil_div(C.MAX_VIRTUAL_SIZE, C.DEFAULT_BLOCK_SIZE) * 4))
MAX_BAT_ENTRIES = 1 << 24  # 64 MiB of BAT: refuse tiny blocks on huge disks rather than allocate gigabytes


def _ff(n: int) -> "memoryview | bytes":
    return memoryview(_FF)[:n] if n <= len(_FF) else b"\xff" * n


def vhd_now() -> int:
    """Seconds since the VHD epoch (2000-01-01 UTC)."""
    return max(0, int(time.time()) - C.VHD_EPOCH)


def check_block_size(block_size: int) -> None:
    if block_size < 4096 or block_size > C.MAX_BLOCK_SIZE or block_size & (block_size - 1):
        raise InvalidArgument(f"block size {block_size}: need a power of two from 4 KiB to 2 MiB")


def check_size(size: int, what: str = "size") -> None:
    if size <= 0:
        raise InvalidArgument(f"{what} {size} must be positive")
    if size > C.MAX_VIRTUAL_SIZE:
        raise InvalidArgument(f"{what} {size} exceeds the VHD maximum of 2040 GiB")


def new_footer(size: int, disk_type: int, uid: Optional[bytes]) -> Footer:
    return Footer(current_size=size, disk_type=disk_type, uuid=uid or uuidlib.uuid4().bytes, timestamp=vhd_now(),
                  geometry=geometry_u32(size),
                  data_offset=C.FIXED_DATA_OFFSET if disk_type == C.DISK_FIXED else C.HEADER_OFFSET)


def create_fixed_on(backing: Backing, size: int, *, uid: Optional[bytes] = None) -> Footer:
    """A fixed VHD: ``size`` (rounded up to a sector) of data, sparse where the backing allows, then the footer."""
    check_size(size)
    size = C.pad512(size)
    footer = new_footer(size, C.DISK_FIXED, uid)
    backing.resize(size)
    backing.pwrite(footer.pack(), size)
    backing.flush()
    return footer


def create_sparse_on(
    backing: Backing,
    size: int,
    *,
    block_size: int = C.DEFAULT_BLOCK_SIZE,
    max_size: Optional[int] = None,
    uid: Optional[bytes] = None,
    parent: Optional[Tuple[bytes, int, str]] = None,
    round_to_block: bool = True,
) -> Tuple[Footer, Header]:
    """A dynamic disk, or a differencing one when ``parent = (uuid, timestamp, relative name)`` is given.

    ``max_size`` sizes the BAT and batmap for later growth in place (blktap ``-S``): a resize up to it rewrites
    the footer only.
    """
    check_block_size(block_size)
    check_size(size)
    size = round_size(size, block_size) if round_to_block else C.pad512(size)
    check_size(size)
    room = max(size, max_size or 0)
    check_size(room, "max size")
    entries = C.ceil_div(room, block_size)
    if entries > MAX_BAT_ENTRIES:
        raise InvalidArgument(f"{room} bytes in {block_size}-byte blocks needs {entries} BAT entries; "
                              f"use larger blocks (limit {MAX_BAT_ENTRIES})")
    payloads: List[Tuple[int, bytes]] = []
    if parent is not None:
        pname = locators.safe_relative_name(parent[2], what="parent name")
        payloads = [(code, locators.encode(code, pname)) for code in locators.WRITE_ORDER]
    lay = plan(entries, payloads)
    footer = new_footer(size, C.DISK_DIFF if parent else C.DISK_DYNAMIC, uid)
    locs = [Locator(code=code, data_space=space, data_length=len(payload), data_offset=off)
            for code, off, payload, space in lay.locators]
    locs += [Locator()] * (C.LOCATOR_COUNT - len(locs))
    header = Header(table_offset=lay.table_offset, max_table_entries=entries, block_size=block_size,
                    parent_uuid=parent[0] if parent else bytes(16), parent_timestamp=parent[1] if parent else 0,
                    parent_name=posixpath.basename(parent[2]) if parent else "", locators=locs)
    batmap = bytes(lay.batmap_size_sectors * C.SECTOR)
    bmh = BatmapHeader(batmap_offset=lay.batmap_offset, batmap_size=lay.batmap_size_sectors,
                       checksum=batmap_checksum(batmap, size, block_size))
    fbytes = footer.pack()
    head = bytearray(lay.table_offset)
    head[0:512] = fbytes
    head[C.HEADER_OFFSET : C.HEADER_OFFSET + C.HEADER_SIZE] = header.pack()
    bat_len = C.pad512(entries * 4)
    tail_start = lay.table_offset + bat_len
    tail = bytearray(lay.end_of_metadata + C.FOOTER_SIZE - tail_start)
    tail[lay.batmap_header_offset - tail_start : lay.batmap_header_offset - tail_start + C.SECTOR] = bmh.pack()
    for _code, off, payload, _space in lay.locators:
        tail[off - tail_start : off - tail_start + len(payload)] = payload
    tail[-C.FOOTER_SIZE :] = fbytes
    if backing.size():
        backing.resize(0)
    # One vectored write; the all-unallocated BAT comes from a shared 0xFF buffer (no per-call 4 MiB build).
    backing.pwritev([head, _ff(bat_len), tail], 0)
    backing.flush()
    return footer, header


def create_child_on(backing: Backing, parent: VhdImage, parent_name: str, *, uid: Optional[bytes] = None,
                    max_size: Optional[int] = None) -> Tuple[Footer, Header]:
    """Differencing child of ``parent`` (same size and block size), naming it ``parent_name`` in its locators."""
    bs = parent.block_size if not parent.is_fixed else C.DEFAULT_BLOCK_SIZE
    mtime = parent.backing.mtime()
    # blktap records the parent file's mtime; backings without one (LVs) get the parent's creation time.
    pts = max(0, int(mtime) - C.VHD_EPOCH) if mtime is not None else parent.footer.timestamp
    room = max(max_size or 0, parent.capacity_limit if not parent.is_fixed else 0)
    return create_sparse_on(backing, parent.virtual_size, block_size=bs, max_size=room or None, uid=uid,
                            parent=(parent.uuid, pts, parent_name), round_to_block=False)
