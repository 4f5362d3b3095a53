"""One VHD file: its metadata, block lookup, and crash-ordered writes to its own blocks.

A :class:`VhdImage` knows nothing about parents; :mod:`smapi.vhd.chain` stacks images. Writes go through a small
transaction so the on-disk order is always blktap's: data and new-block bitmaps, barrier, bitmaps of existing
blocks and BAT sectors, barrier, batmap and footer. Until :meth:`VhdImage.commit` runs nothing on disk refers to
the new data, so a crash at any point leaves the old or the new content, never garbage.

Other modules change an image only through its methods (``replace_bat``, ``write_batmap``, ``switch_tables``,
``write_footer``, ``update_footer``, ``update_header``...), never by setting its private fields.
"""

from array import array
from collections import OrderedDict
from typing import Dict, List, Optional, Set, Tuple

from . import bitmaps
from . import constants as C
from .backing import Backing
from .bat import bat_from_bytes, bat_to_bytes, new_bat, pack_bat
from .buffers import Buffer, pwritev, read_exact, zero_fill, zeros
from .errors import CorruptImage, IncompleteIO, OutOfRange, ReadOnlyImage, UnsupportedImage, VhdError
from .geometry import geometry_u32
from .layout import aligned_block_sector, bat_bytes, bitmap_bytes
from .opening import probe_batmap, read_metadata
from .structs import BatmapHeader, Footer, Header, batmap_checksum

_BITMAP_CACHE_MAX = 4096  # bitmaps kept per image (512 B each for 2 MiB blocks): bounded memory

# Kept importable from here: callers outside the package used these names before bat.py and buffers.py existed.
__all__ = ["VhdImage", "new_bat", "pack_bat", "zero_fill"]


class VhdImage:
    """An open VHD (fixed, dynamic or differencing) on a :class:`Backing`.

    Use :meth:`open`. Attributes: ``footer``, ``header`` (None for fixed), ``name``, ``writable``. The BAT is read
    lazily, so metadata-only users (snapshot, scans, hidden flag) never pay for it.
    """

    def __init__(self, backing: Backing, footer: Footer, header: Optional[Header], *, name: str, writable: bool,
                 file_size: int, primary_ok: bool, footer_pos: int) -> None:
        self.backing = backing
        self.footer = footer
        self.header = header
        self.name = name
        self.writable = writable
        self.file_size = file_size
        self.primary_ok = primary_ok  # False when we fell back to the backup footer at offset 0
        self._footer_pos = footer_pos
        self._bat: Optional[array] = None
        self.batmap_header: Optional[BatmapHeader] = None
        self.batmap_header_offset = 0
        self.batmap: Optional[bytearray] = None
        self.batmap_valid = False
        self._bitmaps: OrderedDict[int, bytearray] = OrderedDict()
        self._next_free: Optional[int] = None
        # Blocks whose data area was checked against the metadata regions: block -> data offset checked, valid
        # while the structures the regions derive from are the very same objects (see _regions_key).
        self._safe_blocks: Dict[int, int] = {}
        self._safe_key: tuple = ()
        # Pending transaction state.
        self._dirty_bat: Set[int] = set()
        self._dirty_bitmaps: Dict[int, bytearray] = {}
        self._dirty_batmap = False
        self._data_written = False
        self.owns_backing = True
        self._bad_batmap_reason = ""
        if header is not None:
            self.block_size = header.block_size
            self.bitmap_size = bitmap_bytes(header.block_size)
        else:
            self.block_size = C.DEFAULT_BLOCK_SIZE
            self.bitmap_size = 0
        self.sectors_per_block = self.block_size // C.SECTOR

    # ----------------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, backing: Backing, *, name: Optional[str] = None, writable: Optional[bool] = None,
             owns_backing: bool = True) -> "VhdImage":
        """Parse footer(s) and header; raise a :class:`VhdFormatError` subclass naming the bad field.

        With ``owns_backing`` the image closes the backing when it is closed.
        """
        label = name or backing.name
        writable = backing.writable if writable is None else writable
        if writable and not backing.writable:
            raise ReadOnlyImage("backing is read-only", image=label)
        meta = read_metadata(backing, label)
        img = cls(backing, meta.footer, meta.header, name=label, writable=writable, file_size=meta.file_size,
                  primary_ok=meta.primary_ok, footer_pos=meta.footer_pos)
        if meta.header is not None:
            img.batmap_header, img.batmap_header_offset, img._bad_batmap_reason = \
                probe_batmap(backing, meta.header, meta.file_size)
        img.owns_backing = owns_backing
        return img

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def virtual_size(self) -> int:
        return self.footer.current_size

    @property
    def disk_type(self) -> int:
        return self.footer.disk_type

    @property
    def is_fixed(self) -> bool:
        return self.footer.disk_type == C.DISK_FIXED

    @property
    def is_differencing(self) -> bool:
        return self.footer.disk_type == C.DISK_DIFF

    @property
    def uuid(self) -> bytes:
        return self.footer.uuid

    @property
    def parent_uuid(self) -> Optional[bytes]:
        return self.header.parent_uuid if self.is_differencing and self.header else None

    @property
    def hidden(self) -> bool:
        return bool(self.footer.hidden)

    @property
    def entries(self) -> int:
        return self.header.max_table_entries if self.header else C.ceil_div(self.virtual_size, self.block_size)

    @property
    def capacity_limit(self) -> int:
        """Largest virtual size reachable without moving metadata (BAT room; blktap ``-S`` preallocation)."""
        return self.entries * self.block_size if self.header else self.virtual_size

    @property
    def bat(self) -> "array[int]":
        if self._bat is None:
            self._load_bat()
        assert self._bat is not None
        return self._bat

    def _load_bat(self) -> None:
        assert self.header is not None
        n = self.header.max_table_entries
        raw = read_exact(self.backing, n * 4, self.header.table_offset, self.name, "BAT", self.file_size)
        self._bat = bat_from_bytes(raw)
        self._load_batmap()

    def _load_batmap(self) -> None:
        hdr = self.batmap_header
        if hdr is None:
            return
        raw = bytearray(read_exact(self.backing, hdr.batmap_size * C.SECTOR, hdr.batmap_offset, self.name,
                                    "batmap", self.file_size))
        if batmap_checksum(raw, self.virtual_size, self.block_size) == hdr.checksum:
            self.batmap = raw
            self.batmap_valid = True
        elif self.writable:
            # Start from an empty map (always safe: a clear bit only means "look at the bitmap") and rewrite it.
            self.batmap = bytearray(len(raw))
            self._dirty_batmap = True
        self._bad_batmap_reason = "" if self.batmap_valid else "batmap checksum mismatch"

    @property
    def batmap_problem(self) -> str:
        """Why the batmap found is not used ("" when it is, or when there is none)."""
        return self._bad_batmap_reason

    def allocated_blocks(self) -> int:
        """Number of allocated BAT entries (``vhd-util query -a``)."""
        if self.header is None:
            return C.ceil_div(self.virtual_size, self.block_size)
        return len(self.bat) - self.bat.count(C.BAT_UNUSED)

    # ----------------------------------------------------------------------------------------------- reads
    def block_data_offset(self, blk: int) -> Optional[int]:
        """File offset of block ``blk``'s data (past its bitmap), or None when unallocated."""
        bat = self.bat
        if blk >= len(bat):
            return None
        e = bat[blk]
        if e == C.BAT_UNUSED:
            return None
        off = e * C.SECTOR
        if off < C.SECTOR or off + self.bitmap_size + self.block_size > self.file_size:
            raise CorruptImage(f"entry {e:#x} puts block {blk} outside the file ({self.file_size} bytes)",
                               field=f"BAT[{blk}]", image=self.name)
        return off + self.bitmap_size

    def block_full(self, blk: int) -> bool:
        """True when every sector of the block is present here (batmap bit or all-ones bitmap)."""
        bm = self.batmap
        if bm is not None and bm[blk >> 3] & (0x80 >> (blk & 7)):
            return True
        return bitmaps.all_set(self.bitmap(blk), self.sectors_per_block)

    def bitmap(self, blk: int) -> bytearray:
        """The sector bitmap of an allocated block (cached, bounded)."""
        cached = self._bitmaps.get(blk)
        if cached is not None:
            self._bitmaps.move_to_end(blk)
            return cached
        data_off = self.block_data_offset(blk)
        if data_off is None:
            raise VhdError(f"block {blk} is not allocated", image=self.name)
        bm = bytearray(read_exact(self.backing, self.bitmap_size, data_off - self.bitmap_size, self.name,
                                   f"bitmap[{blk}]", self.file_size))
        self._cache_bitmap(blk, bm)
        return bm

    def _cache_bitmap(self, blk: int, bm: bytearray) -> None:
        self._bitmaps[blk] = bm
        self._bitmaps.move_to_end(blk)
        while len(self._bitmaps) > _BITMAP_CACHE_MAX:
            old, _ = self._bitmaps.popitem(last=False)
            if old in self._dirty_bitmaps:  # never drop a bitmap that is not on disk yet
                self._bitmaps[old] = self._dirty_bitmaps[old]
                break

    def read_raw(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` from file ``offset``; short reads are corruption (the structure promised the bytes)."""
        n = self.backing.readinto(view, offset)
        if n != len(view):
            raise IncompleteIO(f"short read: {n} of {len(view)} bytes at {offset}", image=self.name)

    # ----------------------------------------------------------------------------------------------- writes
    def require_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyImage("image is opened read-only", image=self.name)

    @property
    def end_of_metadata(self) -> int:
        """End of header, BAT, batmap and locator payloads: no block may start before it."""
        if self.header is None:
            return 0
        h = self.header
        end = max(self.footer.data_offset + C.HEADER_SIZE, h.table_offset + bat_bytes(h.max_table_entries))
        if self.batmap_header is not None:
            end = max(end, self.batmap_header_offset + C.SECTOR,
                      self.batmap_header.batmap_offset + self.batmap_header.batmap_size * C.SECTOR)
        for loc in h.locators:
            if loc.code != C.PLAT_NONE and loc.data_offset + loc.space_bytes <= self.file_size:
                end = max(end, loc.data_offset + loc.space_bytes)
        return end

    def metadata_regions(self) -> List[Tuple[int, int, str]]:
        """``(start, end, what)`` of every metadata structure; no block may overlap one."""
        h = self.header
        if h is None:
            return []
        regions = [(0, C.FOOTER_SIZE, "backup footer"),
                   (self.footer.data_offset, self.footer.data_offset + C.HEADER_SIZE, "header"),
                   (h.table_offset, h.table_offset + bat_bytes(h.max_table_entries), "BAT")]
        if self.batmap_header is not None:
            bm = self.batmap_header
            regions.append((self.batmap_header_offset, self.batmap_header_offset + C.SECTOR, "batmap header"))
            regions.append((bm.batmap_offset, bm.batmap_offset + bm.batmap_size * C.SECTOR, "batmap"))
        for i, loc in enumerate(h.locators):
            if loc.code != C.PLAT_NONE:
                regions.append((loc.data_offset, loc.data_offset + loc.space_bytes, f"locator[{i}]"))
        return regions

    def end_of_data(self) -> int:
        """Where the next block (and the primary footer) goes: past metadata and every allocated block."""
        if self._next_free is None:
            end = self.end_of_metadata
            last = max(filter(C.BAT_UNUSED.__ne__, self.bat), default=None)
            if last is not None:
                block_end = last * C.SECTOR + self.bitmap_size + self.block_size
                if block_end > self.file_size:
                    # A forged or torn entry: trusting it would put the next block (and the footer) terabytes out.
                    blk = self.bat.index(last)
                    raise CorruptImage(f"entry {last:#x} puts block {blk} past the end of the file "
                                       f"({self.file_size} bytes); run repair", field=f"BAT[{blk}]",
                                       image=self.name)
                end = max(end, block_end)
            self._next_free = end
        return self._next_free

    def write_at(self, offset: int, data: Buffer) -> None:
        """Write sector-aligned ``data`` at virtual ``offset`` into this image only (no parent reads needed).

        Newly allocated blocks of a differencing disk only mark the written sectors; a dynamic disk marks whole
        blocks, since its unwritten sectors are zero anyway. Call :meth:`commit` to make the writes reachable.
        A virtual size that is not a multiple of 512 (pyvhd writes these) ends in a partial sector, which is
        written whole: its bytes past the virtual size are never read back.
        """
        self.require_writable()
        view = memoryview(data).cast("B")
        n = len(view)
        if offset % C.SECTOR or n % C.SECTOR:
            raise OutOfRange(f"unaligned image write {n}@{offset}", image=self.name)
        if offset < 0 or offset + n > C.pad512(self.virtual_size):
            raise OutOfRange(f"write {n}@{offset} past virtual size {self.virtual_size}", image=self.name)
        if not self.is_fixed:
            self.end_of_data()  # refuses a BAT pointing past the end of the file before anything is written
        if self.is_fixed:
            # The footer follows the data directly: the part of a partial last sector past the size is dropped.
            self.backing.pwrite(view[: self.virtual_size - offset], offset)
            self._data_written = True
            return
        bs = self.block_size
        pos = 0
        while pos < n:
            voff = offset + pos
            blk, inb = divmod(voff, bs)
            take = min(bs - inb, n - pos)
            self._write_in_block(blk, inb, view[pos : pos + take])
            pos += take

    def _regions_key(self) -> tuple:
        """What :meth:`metadata_regions` derives from; the structures are immutable and replaced on change."""
        return (self.header, self.batmap_header, self.batmap_header_offset, self.footer.data_offset)

    def _check_block_placement(self, blk: int, data_off: int) -> None:
        """Refuse a block whose area overlaps metadata: writing there would destroy it, so fail rather than
        corrupt further. The answer is remembered per (block, offset): this ran on every write before and building
        the region list was a measurable part of a small write's cost."""
        key = self._regions_key()
        if key != self._safe_key:
            self._safe_blocks.clear()
            self._safe_key = key
        elif self._safe_blocks.get(blk) == data_off:
            return
        start = data_off - self.bitmap_size
        for lo, hi, what in self.metadata_regions():
            if start < hi and data_off + self.block_size > lo:
                raise CorruptImage(f"block {blk} overlaps the {what}", field=f"BAT[{blk}]", image=self.name)
        self._safe_blocks[blk] = data_off

    def _write_in_block(self, blk: int, inb: int, piece: memoryview) -> None:
        data_off = self.block_data_offset(blk)
        s0, s1 = inb // C.SECTOR, (inb + len(piece)) // C.SECTOR
        if data_off is not None:
            self._check_block_placement(blk, data_off)
            self.backing.pwrite(piece, data_off + inb)
            self._data_written = True
            batmap = self.batmap
            if batmap is not None and batmap[blk >> 3] & (0x80 >> (blk & 7)):
                return
            bm = self.bitmap(blk)
            # Compare only the bytes the range touches (a copy of the whole bitmap per write is wasted work).
            b0, b1 = s0 >> 3, ((s1 - 1) >> 3) + 1
            before = bm[b0:b1]
            bitmaps.set_range(bm, s0, s1)
            if bm[b0:b1] != before:
                self._dirty_bitmaps[blk] = bm
            return
        self._allocate(blk, inb, piece, s0, s1)

    def _allocate(self, blk: int, inb: int, piece: memoryview, s0: int, s1: int) -> None:
        if blk >= self.entries:
            raise OutOfRange(f"block {blk} beyond the BAT ({self.entries} entries)", image=self.name)
        bm = bytearray(self.bitmap_size)
        if self.is_differencing:
            bitmaps.set_range(bm, s0, s1)
        else:
            bitmaps.set_range(bm, 0, self.sectors_per_block)
        start = aligned_block_sector(self.end_of_data(), self.bitmap_size // C.SECTOR)
        if start >= C.BAT_UNUSED:
            raise OutOfRange("image file would exceed the 2 TiB addressable by the BAT", image=self.name)
        off = start * C.SECTOR
        bs = self.block_size
        # Nothing references this region until the BAT entry lands, so bitmap, padding and data go out together.
        bufs: List[Buffer] = [bm]
        if inb:
            bufs.append(zeros(inb))
        bufs.append(piece)
        tail = bs - inb - len(piece)
        block_end = off + self.bitmap_size + bs
        grow_to = 0
        if tail:
            # The backing contract makes bytes gained by growing it read as zeros, so only the part of the tail
            # that overlaps existing bytes (on a file: the old footer) has to be written; the rest becomes a hole.
            # Writing megabytes of zeros per new block was most of the cost of first writes.
            current = self.backing.size()
            overlap = max(0, min(block_end, current) - (block_end - tail))
            if overlap:
                bufs.append(zeros(overlap))
            if block_end > current:
                grow_to = block_end
        pwritev(self.backing, bufs, off)
        if grow_to and self.backing.size() < grow_to:
            self.backing.resize(grow_to)
        self._data_written = True
        self.bat[blk] = start
        self._next_free = off + self.bitmap_size + bs
        self.file_size = max(self.file_size, self._next_free)
        self._dirty_bat.add(blk)
        self._cache_bitmap(blk, bm)
        if self.batmap is not None and bitmaps.all_set(bm, self.sectors_per_block):
            self.batmap[blk >> 3] |= 0x80 >> (blk & 7)
            self._dirty_batmap = True

    @property
    def pending(self) -> bool:
        return bool(self._data_written or self._dirty_bat or self._dirty_bitmaps or self._dirty_batmap)

    def commit(self) -> None:
        """Make pending writes durable in blktap order: barrier, bitmaps + BAT, barrier, batmap + footer, barrier.

        A barrier with nothing written before it since the previous one is skipped; every write is still followed
        by one before this returns."""
        if not self.pending:
            return
        self.require_writable()
        b = self.backing
        b.flush()  # data (and new-block bitmaps) on disk before anything points at them
        meta = bool(self._dirty_bitmaps or self._dirty_bat)
        for blk, bm in sorted(self._dirty_bitmaps.items()):
            data_off = self.block_data_offset(blk)
            assert data_off is not None
            b.pwrite(bm, data_off - self.bitmap_size)
            if self.batmap is not None and bitmaps.all_set(bm, self.sectors_per_block):
                self.batmap[blk >> 3] |= 0x80 >> (blk & 7)
                self._dirty_batmap = True
        self._dirty_bitmaps.clear()
        if self._dirty_bat:
            self._write_bat_sectors(self._dirty_bat)
            self._dirty_bat = set()
        if meta:
            b.flush()  # bitmaps and BAT before the batmap may claim "full"
        tail = False
        if self._dirty_batmap:
            self.write_batmap()
            tail = True
        if self.header is not None and self._footer_pos != self.end_of_data():
            self.write_footer()
            tail = True
        self._data_written = False
        if tail:
            # Only when something was written since the last barrier: an overwrite of mapped blocks (the common
            # FUA / flush case) then costs one fdatasync instead of two.
            b.flush()

    def _write_bat_sectors(self, blocks: Set[int]) -> None:
        """Write only the 512-byte BAT sectors that changed (128 entries each), merged into runs."""
        assert self.header is not None
        per = C.SECTOR // 4
        sectors = sorted({blk // per for blk in blocks})
        bat = self.bat
        run_start = prev = sectors[0]
        for s in sectors[1:] + [None]:
            if s is not None and s == prev + 1:
                prev = s
                continue
            lo, hi = run_start * per, min((prev + 1) * per, len(bat))
            raw = bat_to_bytes(bat[lo:hi])
            raw += b"\xff" * (C.pad512(len(raw)) - len(raw))
            self.backing.pwrite(raw, self.header.table_offset + lo * 4)
            if s is not None:
                run_start = prev = s

    def write_batmap(self, batmap: Optional[bytearray] = None) -> None:
        """Write the batmap (``batmap`` replaces the one in memory first) and its header with a fresh checksum.

        No barrier: callers order it (a clear bit is always safe, a set bit only after the block's bitmap)."""
        if batmap is not None:
            self.batmap = batmap
        assert self.batmap is not None and self.batmap_header is not None
        hdr = self.batmap_header.with_(checksum=batmap_checksum(self.batmap, self.virtual_size, self.block_size))
        self.backing.pwrite(self.batmap, hdr.batmap_offset)
        self.backing.pwrite(hdr.pack(), self.batmap_header_offset)
        self.batmap_header = hdr
        self.batmap_valid = True
        self._dirty_batmap = False

    def write_footer(self) -> None:
        """Footer at the end of data, then drop any stale tail (a torn allocation or an old footer)."""
        pos = self.end_of_data() if self.header is not None else self.virtual_size
        self.backing.pwrite(self.footer.pack(), pos)
        if self.backing.size() > pos + C.FOOTER_SIZE:
            self.backing.resize(pos + C.FOOTER_SIZE)
        self.file_size = pos + C.FOOTER_SIZE
        self._footer_pos = pos
        self.primary_ok = True

    def replace_bat(self, bat: "array[int]") -> None:
        """Write ``bat`` over the whole table in one write, then barrier; the end of data is recomputed from it.

        For changes that unmap blocks (reset, repair): the caller has made the batmap agree first."""
        self.require_writable()
        assert self.header is not None and len(bat) == self.header.max_table_entries
        self.backing.pwrite(pack_bat(bat), self.header.table_offset)
        self.backing.flush()
        self._bat = bat
        self._dirty_bat = set()
        self._next_free = None
        self.drop_caches()

    def switch_tables(self, header: Header, bat: "array[int]", batmap: Optional[Tuple[int, BatmapHeader,
                      bytearray]], end: int) -> None:
        """Point the header at a BAT (and batmap) already written, unreferenced, at the end of the file.

        ``batmap`` is (batmap header offset, batmap header, batmap) or None; ``end`` is the end of the new tables.
        The header write is the switch: a crash before it leaves the old tables in use."""
        self.require_writable()
        self.update_header(header)
        self.backing.flush()
        self._bat = bat
        if batmap is not None:
            self.batmap_header_offset, self.batmap_header, self.batmap = batmap
            self.batmap_valid = True
        self._safe_blocks.clear()
        self._next_free = max(self.end_of_data(), end)
        self.file_size = max(self.file_size, end)

    def moved_fixed_footer(self, footer: Footer) -> None:
        """A fixed image's footer was rewritten at ``footer.current_size`` (a grow): record where it now is."""
        assert self.header is None
        self.footer = footer
        self.file_size = footer.current_size + C.FOOTER_SIZE
        self._footer_pos = footer.current_size

    def update_footer(self, **changes: object) -> None:
        """Change footer fields: primary footer first, then the backup copy at 0 (both, as ``vhd-util set``)."""
        self.require_writable()
        self.commit()
        self.footer = self.footer.with_(**changes)
        self.write_footer()
        self.backing.flush()
        if self.header is not None:
            self.backing.pwrite(self.footer.pack(), 0)
            self.backing.flush()

    def update_header(self, header: Header) -> None:
        self.require_writable()
        assert self.header is not None
        self.backing.pwrite(header.pack(), self.footer.data_offset)
        self.header = header

    def set_hidden(self, hidden: bool) -> None:
        self.update_footer(hidden=1 if hidden else 0)

    def set_marker(self, value: int) -> None:
        """blktap's 1-byte marker lives in the batmap header; images without a batmap cannot hold it."""
        self.require_writable()
        if self.batmap_header is None:
            raise UnsupportedImage("no batmap to hold a marker", field="batmap", image=self.name)
        if not 0 <= value <= 255:
            raise OutOfRange(f"marker {value} not in 0..255", image=self.name)
        _ = self.bat  # make sure the batmap is loaded so its checksum stays right
        self.batmap_header = self.batmap_header.with_(marker=value)
        self.backing.pwrite(self.batmap_header.pack(), self.batmap_header_offset)
        self.backing.flush()

    @property
    def marker(self) -> Optional[int]:
        return self.batmap_header.marker if self.batmap_header is not None else None

    def new_geometry_footer(self, size: int) -> Footer:
        return self.footer.with_(current_size=size, geometry=geometry_u32(size))

    def drop_caches(self) -> None:
        self._bitmaps.clear()

    def close(self) -> None:
        try:
            if self.writable and self.pending:
                self.commit()
        finally:
            if self.owns_backing:
                self.backing.close()

    def __enter__(self) -> "VhdImage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VhdImage {self.name} {C.DISK_TYPE_NAMES.get(self.disk_type)} {self.virtual_size}>"


