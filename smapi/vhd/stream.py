"""Stream a chain as one self-contained dynamic VHD: an iterator of ``bytes`` chunks, memory bounded by a block.

The output layout is decided from the BATs alone (no data pre-pass): every block allocated anywhere in the chain is
emitted whole with an all-ones bitmap and its batmap bit set, data 4 KiB aligned, so the result reads the same in
blktap, qemu and libvhdi.
"""

from typing import Iterator

from . import constants as C
from .backing import aligned_buffer
from .chain import Chain
from .create import new_footer
from .geometry import geometry_u32
from .image import new_bat, pack_bat
from .layout import aligned_block_sector, batmap_sectors, bitmap_bytes, plan
from .structs import BatmapHeader, Header, batmap_checksum


def stream_vhd(chain: Chain) -> Iterator[bytes]:
    """Yield the bytes of a dynamic VHD with the chain's content (same virtual size and block size)."""
    size = chain.size
    bs = chain.block_size
    nblocks = C.ceil_div(size, bs)
    amap = chain.allocation_map()
    lay = plan(nblocks, [])
    bm_bytes = bitmap_bytes(bs)
    bm_secs = bm_bytes // C.SECTOR
    bat = new_bat(nblocks)
    batmap = bytearray(batmap_sectors(nblocks) * C.SECTOR)
    positions = []
    end = lay.end_of_metadata
    for blk in range(nblocks):
        if amap[blk]:
            sec = aligned_block_sector(end, bm_secs)
            bat[blk] = sec
            batmap[blk >> 3] |= 0x80 >> (blk & 7)
            positions.append((blk, sec * C.SECTOR))
            end = sec * C.SECTOR + bm_bytes + bs
    footer = new_footer(size, C.DISK_DYNAMIC, None).with_(geometry=geometry_u32(size))
    header = Header(table_offset=lay.table_offset, max_table_entries=nblocks, block_size=bs)
    bmh = BatmapHeader(batmap_offset=lay.batmap_offset, batmap_size=lay.batmap_size_sectors,
                       checksum=batmap_checksum(batmap, size, bs))
    meta = bytearray(lay.end_of_metadata)
    meta[0:512] = footer.pack()
    meta[C.HEADER_OFFSET : C.HEADER_OFFSET + C.HEADER_SIZE] = header.pack()
    raw_bat = pack_bat(bat)
    meta[lay.table_offset : lay.table_offset + len(raw_bat)] = raw_bat
    meta[lay.batmap_header_offset : lay.batmap_header_offset + C.SECTOR] = bmh.pack()
    meta[lay.batmap_offset : lay.batmap_offset + len(batmap)] = batmap
    yield bytes(meta)
    pos = lay.end_of_metadata
    ones = b"\xff" * bm_bytes
    buf = aligned_buffer(bs)
    mv = memoryview(buf)
    try:
        for blk, off in positions:
            n = min(bs, size - blk * bs)
            chain.readinto(mv[:n], blk * bs)
            if n < bs:
                mv[n:bs] = bytes(bs - n)
            gap = off - pos
            # One bytes object per block keeps the consumer free to hold on to it.
            yield bytes(gap) + ones + buf[:bs] if gap else ones + buf[:bs]
            pos = off + bm_bytes + bs
    finally:
        # Slices may still be referenced by a traceback; the mmap is freed with its last reference.
        mv.release()
    yield footer.pack()


def stream_length(chain: Chain) -> int:
    """Exact byte length :func:`stream_vhd` will produce (for a Content-Length header)."""
    bs = chain.block_size
    nblocks = C.ceil_div(chain.size, bs)
    amap = chain.allocation_map()
    end = plan(nblocks, []).end_of_metadata
    bm_bytes = bitmap_bytes(bs)
    for blk in range(nblocks):
        if amap[blk]:
            end = aligned_block_sector(end, bm_bytes // C.SECTOR) * C.SECTOR + bm_bytes + bs
    return end + C.FOOTER_SIZE
