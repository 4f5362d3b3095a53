"""A virtual disk seen as a dynamic or differencing VHD file, synthesised on the fly: the one VHD builder.

Everything that hands a VHD to someone else goes through :class:`VhdView`: ``stream_vhd``/``clone``, the Transfer
service's ``.vhd`` downloads and Range GETs, ``/export_raw_vdi?format=vhd`` and ``smapi vdi-export --format vhd``.
Nothing is written anywhere: the layout is decided from a map of present blocks alone (a chain's BATs, or a scan
of a raw disk), so the exact length is known before the first byte (HEAD, Content-Length) and any byte range can be
produced without producing what precedes it. Memory stays bounded by one piece.

Layout (blktap's): footer copy, header, BAT, batmap, [three parent locators], then each present block as an
all-ones sector bitmap plus the block's data (data 4 KiB aligned), then the footer. Every sector of a present block
is marked: the view is block-sparse, not sector-sparse, so it reads the same in blktap, qemu and libvhdi (libvhdi
misreads partly set bitmap bytes; qemu ignores bitmaps).
"""

import bisect
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

from . import constants as C
from . import locators
from .bat import new_bat, pack_bat
from .chain import Chain
from .create import new_footer, vhd_now
from .errors import InvalidArgument
from .layout import aligned_block_sector, bitmap_bytes, plan
from .structs import BatmapHeader, Header, Locator, batmap_checksum

#: reads ``length`` bytes of the virtual disk at ``offset``
ReadFn = Callable[[int, int], bytes]
#: the most bytes one piece holds
PIECE = 1 << 20


@dataclass
class VhdView:
    """Random access to the bytes of a VHD file that holds the blocks of a virtual disk flagged present.

    ``length`` is the file's exact size; :meth:`pieces` yields any byte range of it, :meth:`read` returns one.
    """

    size: int
    block_size: int
    blocks: List[int]  # present blocks, ascending
    offsets: List[int]  # file offset of each present block's bitmap
    meta: bytes  # everything before the first block
    footer: bytes
    length: int
    source: ReadFn

    @property
    def bitmap_len(self) -> int:
        return bitmap_bytes(self.block_size)

    def pieces(self, start: int = 0, end: Optional[int] = None) -> Iterator[bytes]:
        """The bytes [start, end) of the file, in pieces of at most :data:`PIECE` bytes."""
        end = self.length if end is None else min(end, self.length)
        pos = max(0, start)
        while pos < end:
            piece = self._piece_at(pos, min(end, pos + PIECE))
            yield piece
            pos += len(piece)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the file from ``offset`` (short at the end of the file)."""
        return b"".join(self.pieces(offset, offset + length))

    def _piece_at(self, pos: int, end: int) -> bytes:
        footer_at = self.length - C.FOOTER_SIZE
        if pos >= footer_at:
            return self.footer[pos - footer_at : end - footer_at]
        if pos < len(self.meta):
            return self.meta[pos : min(end, len(self.meta))]
        # The block region (bitmap + data) at or before pos, if pos is inside it.
        i = bisect.bisect_right(self.offsets, pos) - 1
        bm = self.bitmap_len
        if i >= 0:
            off = self.offsets[i]
            if pos < off + bm:
                return b"\xff" * (min(end, off + bm) - pos)
            data_start = off + bm
            if pos < data_start + self.block_size:
                stop = min(end, data_start + self.block_size)
                vstart = self.blocks[i] * self.block_size + (pos - data_start)
                n = stop - pos
                avail = max(0, min(n, self.size - vstart))
                data = self.source(vstart, avail) if avail else b""
                return data + bytes(n - avail)  # a last block past the virtual size is zero padded
        # Zeros (alignment padding) up to the next block or the footer.
        nxt = self.offsets[i + 1] if i + 1 < len(self.offsets) else footer_at
        return bytes(min(end, nxt) - pos)


def build_view(size: int, present: "bytes | bytearray", source: ReadFn, *, uid: Optional[bytes] = None,
               block_size: int = C.DEFAULT_BLOCK_SIZE, parent: Optional[Tuple[bytes, str]] = None) -> VhdView:
    """The VHD of a ``size``-byte disk holding the blocks flagged in ``present`` (one byte per block), whose data
    ``source`` reads. ``parent = (parent uuid, parent file name)`` makes it differencing, ``uid`` is the footer
    uuid (a new random one when None)."""
    if size <= 0 or size > C.MAX_VIRTUAL_SIZE:
        raise InvalidArgument(f"size {size} outside 1 B .. 2040 GiB")
    nblocks = C.ceil_div(size, block_size)
    payloads = []
    if parent is not None:
        payloads = [(code, locators.encode(code, parent[1])) for code in locators.WRITE_ORDER]
    lay = plan(nblocks, payloads)
    bm_bytes = bitmap_bytes(block_size)
    bat = new_bat(nblocks)
    batmap = bytearray(lay.batmap_size_sectors * C.SECTOR)
    blocks: List[int] = []
    offsets: List[int] = []
    end = lay.end_of_metadata
    for blk in range(nblocks):
        if blk < len(present) and present[blk]:
            sec = aligned_block_sector(end, bm_bytes // C.SECTOR)
            bat[blk] = sec
            batmap[blk >> 3] |= 0x80 >> (blk & 7)
            blocks.append(blk)
            offsets.append(sec * C.SECTOR)
            end = sec * C.SECTOR + bm_bytes + block_size
    footer = new_footer(size, C.DISK_DIFF if parent is not None else C.DISK_DYNAMIC, uid)
    locs = [Locator(code=code, data_space=space, data_length=len(payload), data_offset=off)
            for code, off, payload, space in lay.locators]
    locs += [Locator()] * (C.LOCATOR_COUNT - len(locs))
    header = Header(table_offset=lay.table_offset, max_table_entries=nblocks, block_size=block_size,
                    parent_uuid=parent[0] if parent else bytes(16),
                    parent_timestamp=vhd_now() if parent else 0,
                    parent_name=parent[1] if parent else "", locators=locs)
    bmh = BatmapHeader(batmap_offset=lay.batmap_offset, batmap_size=lay.batmap_size_sectors,
                       checksum=batmap_checksum(batmap, size, block_size))
    meta = bytearray(lay.end_of_metadata)
    fbytes = footer.pack()
    meta[0 : C.FOOTER_SIZE] = fbytes
    meta[C.HEADER_OFFSET : C.HEADER_OFFSET + C.HEADER_SIZE] = header.pack()
    raw_bat = pack_bat(bat)
    meta[lay.table_offset : lay.table_offset + len(raw_bat)] = raw_bat
    meta[lay.batmap_header_offset : lay.batmap_header_offset + C.SECTOR] = bmh.pack()
    meta[lay.batmap_offset : lay.batmap_offset + len(batmap)] = batmap
    for _code, off, payload, _space in lay.locators:
        meta[off : off + len(payload)] = payload
    return VhdView(size, block_size, blocks, offsets, bytes(meta), fbytes, end + C.FOOTER_SIZE, source)


def chain_view(chain: Chain, *, uid: Optional[bytes] = None) -> VhdView:
    """A chain's virtual disk as one self-contained dynamic VHD (same size and block size; every block allocated
    anywhere in the chain is present)."""
    return build_view(chain.size, chain.allocation_map(), chain.read, uid=uid, block_size=chain.block_size)


def stream_length(chain: Chain) -> int:
    """Exact byte length of :func:`smapi.vhd.stream_vhd`'s output for ``chain`` (a Content-Length)."""
    return chain_view(chain).length


__all__ = ["VhdView", "ReadFn", "build_view", "chain_view", "stream_length", "PIECE"]
