"""The VHD view of a disk: a dynamic VHD, or a differencing one against a base VDI, synthesised on the fly.

Nothing is written anywhere: a `VhdLayout` is decided from allocation metadata alone (the chain's BATs; a raw
VDI is scanned for non-zero blocks), so its exact length is known before the first byte (HEAD, Content-Length)
and any byte range can be produced without producing what precedes it (Range GETs, as qemu's curl driver does).
Memory stays bounded by one block.

Layout (blktap's, like `smapi.vhd.stream`): footer copy, header, BAT, batmap, [three parent locators], then each
present block as an all-ones sector bitmap plus the block's data (data 4 KiB aligned), then the footer. Every
sector of a present block is marked: the view is block-sparse, not sector-sparse, as the Transfer VM's was.

* dynamic: the blocks the VDI's chain allocates (a complete disk);
* differencing against base B: the blocks where the VDI may differ from B. When both are VHD chains, those are
  the blocks allocated in the images the two chains do not share (either side: a block B wrote after the fork must
  be reset to the VDI's content too); otherwise every block allocated on either side. The parent is named
  `<B>.vhd` with uuid = B's VDI uuid, which is the uuid of B's own dynamic view, so downloading `B.vhd` and
  `V.vhd?base=B` side by side gives a chain that opens as such.
"""

from __future__ import annotations

import bisect
import uuid as uuidlib
from dataclasses import dataclass
from typing import Iterator, List, Optional

from smapi.transfer.disk import BLOCK, Disk
from smapi.vhd import constants as C
from smapi.vhd import locators
from smapi.vhd.create import new_footer, vhd_now
from smapi.vhd.image import new_bat, pack_bat
from smapi.vhd.layout import aligned_block_sector, bitmap_bytes, plan
from smapi.vhd.structs import BatmapHeader, Header, Locator, batmap_checksum

PIECE = 1 << 20  # the most one read produces


def vhd_uuid(vdi_uuid: str) -> bytes:
    """The VHD uuid of a VDI's view: the VDI uuid itself (as the Transfer VM's expose_vhd did)."""
    try:
        return uuidlib.UUID(vdi_uuid).bytes
    except ValueError:
        return uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"smapi-vdi:{vdi_uuid}").bytes


@dataclass
class VhdLayout:
    size: int
    block_size: int
    blocks: List[int]  # present blocks, ascending
    offsets: List[int]  # byte offset of each present block's bitmap
    meta: bytes  # everything before the first block
    footer: bytes
    length: int

    @property
    def bitmap_len(self) -> int:
        return bitmap_bytes(self.block_size)

    def pieces(self, start: int = 0, end: Optional[int] = None, disk: Optional[Disk] = None) -> Iterator[bytes]:
        """The bytes [start, end) of the VHD, in pieces of at most PIECE bytes; `disk` supplies block data."""
        end = self.length if end is None else min(end, self.length)
        pos = start
        while pos < end:
            piece = self._piece_at(pos, min(end, pos + PIECE), disk)
            yield piece
            pos += len(piece)

    def _piece_at(self, pos: int, end: int, disk: Optional[Disk]) -> bytes:
        footer_at = self.length - C.FOOTER_SIZE
        if pos >= footer_at:
            return self.footer[pos - footer_at: end - footer_at]
        if pos < len(self.meta):
            return self.meta[pos: min(end, len(self.meta))]
        # Which block region (bitmap + data) is at or after pos?
        i = bisect.bisect_right(self.offsets, pos) - 1
        bm = self.bitmap_len
        if i >= 0:
            off = self.offsets[i]
            if pos < off + bm:
                return b"\xff" * (min(end, off + bm) - pos)
            if pos < off + bm + self.block_size:
                data_start = off + bm
                stop = min(end, data_start + self.block_size)
                vstart = self.blocks[i] * self.block_size + (pos - data_start)
                n = stop - pos
                avail = max(0, min(n, self.size - vstart))
                data = disk.read(vstart, avail) if (disk is not None and avail) else bytes(avail)
                return data + bytes(n - avail)
        # A gap of zeros (alignment padding) up to the next block or the footer.
        nxt = self.offsets[i + 1] if i + 1 < len(self.offsets) else footer_at
        return bytes(min(end, nxt) - pos)


def build_layout(size: int, present: bytearray, *, uid: bytes, block_size: int = BLOCK,
                 parent: Optional[tuple] = None) -> VhdLayout:
    """Lay out a VHD of `size` bytes holding the blocks flagged in `present`.

    `parent = (parent uuid bytes, parent file name)` makes it differencing.
    """
    nblocks = -(-size // block_size)
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
        if present[blk]:
            sec = aligned_block_sector(end, bm_bytes // C.SECTOR)
            bat[blk] = sec
            batmap[blk >> 3] |= 0x80 >> (blk & 7)
            blocks.append(blk)
            offsets.append(sec * C.SECTOR)
            end = sec * C.SECTOR + bm_bytes + block_size
    disk_type = C.DISK_DIFF if parent is not None else C.DISK_DYNAMIC
    footer = new_footer(size, disk_type, uid)
    locs = [Locator(code=code, data_space=space, data_length=len(payload), data_offset=off)
            for code, off, payload, space in lay.locators]
    locs += [Locator()] * (C.LOCATOR_COUNT - len(locs))
    header = Header(table_offset=lay.table_offset, max_table_entries=nblocks, block_size=block_size,
                    parent_uuid=parent[0] if parent else bytes(16),
                    parent_timestamp=max(0, vhd_now()) if parent else 0,
                    parent_name=parent[1] if parent else "", locators=locs)
    bmh = BatmapHeader(batmap_offset=lay.batmap_offset, batmap_size=lay.batmap_size_sectors,
                       checksum=batmap_checksum(batmap, size, block_size))
    meta = bytearray(lay.end_of_metadata)
    fbytes = footer.pack()
    meta[0:C.FOOTER_SIZE] = fbytes
    meta[C.HEADER_OFFSET: C.HEADER_OFFSET + C.HEADER_SIZE] = header.pack()
    raw_bat = pack_bat(bat)
    meta[lay.table_offset: lay.table_offset + len(raw_bat)] = raw_bat
    meta[lay.batmap_header_offset: lay.batmap_header_offset + C.SECTOR] = bmh.pack()
    meta[lay.batmap_offset: lay.batmap_offset + len(batmap)] = batmap
    for _code, off, payload, _space in lay.locators:
        meta[off: off + len(payload)] = payload
    return VhdLayout(size, block_size, blocks, offsets, bytes(meta), fbytes, end + C.FOOTER_SIZE)


def differing_blocks(disk: Disk, base: Disk) -> bytearray:
    """Blocks where `disk` may differ from `base` (metadata only when both are VHD chains)."""
    mine, theirs = disk.image_uuids(), base.image_uuids()
    if mine and theirs:
        shared = set(mine) & set(theirs)
        a = disk.blocks_of_images(set(mine) - shared)
        b = base.blocks_of_images(set(theirs) - shared)
    else:
        a, b = disk.allocation(), base.allocation()
    n = -(-disk.size // BLOCK)
    out = bytearray(n)
    for i in range(n):
        out[i] = 1 if (i < len(a) and a[i]) or (i < len(b) and b[i]) else 0
    return out


def dynamic_view(disk: Disk, vdi_uuid: str) -> VhdLayout:
    return build_layout(disk.size, disk.allocation(), uid=vhd_uuid(vdi_uuid))


def differencing_view(disk: Disk, vdi_uuid: str, base: Disk, base_uuid: str) -> VhdLayout:
    if base.size != disk.size:
        raise ValueError(f"base VDI {base_uuid} is {base.size} bytes, VDI {vdi_uuid} is {disk.size}: "
                         f"a differencing VHD needs equal sizes")
    return build_layout(disk.size, differing_blocks(disk, base), uid=vhd_uuid(vdi_uuid),
                        parent=(vhd_uuid(base_uuid), f"{base_uuid}.vhd"))
