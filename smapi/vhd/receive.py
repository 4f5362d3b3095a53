"""Applying a dynamic or differencing VHD to a disk as its bytes arrive: the one VHD stream reader.

Uploads and imports (Transfer PUT/BITS ``.vhd``, ``/import_raw_vdi?format=vhd``, ``smapi vdi-import --format vhd``)
write through :class:`VhdReceiver`. The stream is parsed in file order: footer copy, header, BAT; then each
allocated block's sector bitmap and data, in ascending file offset (any BAT order is accepted). Only sectors whose
bitmap bit is set are written, at ``block * block_size`` on the disk: a differencing VHD's unmarked sectors belong
to its parent, and a delta applied onto its base must leave them alone. Parent locators are ignored (the chain is
the target's business).

Everything that can be checked before data lands is checked first: footer and header checksums, type (fixed VHDs
have their only footer at the end and are refused, as by the Transfer VM), block size, no allocated block beyond
the disk, no overlapping blocks, and, when the caller knows the stream's length, that it is long enough to hold
every block the BAT announces, so a truncated upload is refused before it writes anything. Memory: one block.

Errors: :class:`UnsupportedImage` (a fixed VHD), :class:`OutOfRange` (a block beyond the disk),
:class:`IncompleteIO` (a truncated stream), :class:`CorruptImage` (anything else).
"""

import struct
from typing import Callable, List, Optional, Tuple

from . import constants as C
from .errors import CorruptImage, IncompleteIO, OutOfRange, UnsupportedImage, VhdError
from .layout import bitmap_bytes
from .structs import Footer, Header, parse_footer, parse_header

#: writes ``data`` at ``offset`` of the target disk
Writer = Callable[[int, bytes], None]
MAX_META = 64 << 20  # a BAT for 2040 GiB in 2 MiB blocks is 4 MiB; anything far beyond is hostile
_NAME = "upload"


def stream_footer(raw: bytes) -> Footer:
    """The footer copy that opens a dynamic or differencing VHD stream (its first 512 bytes)."""
    try:
        footer = parse_footer(raw, image=_NAME)
    except VhdError as e:
        # A fixed VHD has its only footer at the end: from the start of a stream it looks like no VHD.
        raise CorruptImage(f"not a dynamic or differencing VHD (no footer copy at offset 0; fixed VHDs are not "
                           f"accepted): {e}", field="footer", image=_NAME) from None
    if footer.disk_type == C.DISK_FIXED:
        raise UnsupportedImage("fixed VHDs are not accepted; send a dynamic or differencing VHD",
                               field="footer.disk_type", image=_NAME)
    if footer.data_offset < C.FOOTER_SIZE or footer.data_offset > MAX_META:
        raise CorruptImage(f"header offset {footer.data_offset} is not after the footer copy",
                           field="footer.data_offset", image=_NAME)
    return footer


class VhdReceiver:
    """Feed it the stream with :meth:`feed`, then call :meth:`finish`; ``footer`` tells the disk type."""

    def __init__(self, disk_size: int, write: Writer, *, length: Optional[int] = None) -> None:
        self.disk_size = disk_size
        self._write = write
        self.length = length  # the whole stream's length, when known
        self.pos = 0  # stream bytes consumed
        self._buf = bytearray()
        self._phase = "footer"
        self.footer: Optional[Footer] = None
        self.header: Optional[Header] = None
        self._blocks: List[Tuple[int, int]] = []  # (file offset of bitmap, block number), ascending
        self._next = 0
        self.virtual_size = 0
        self.expected_length = 0
        self.bytes_written = 0

    @property
    def is_differencing(self) -> bool:
        """True for a delta (unmarked sectors mean unchanged), False for a whole disk (they read zero)."""
        return self.footer is not None and self.footer.disk_type == C.DISK_DIFF

    # -- feeding --------------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            view = self._step(view)

    def _need(self, view: memoryview, upto: int) -> Tuple[Optional[bytes], memoryview]:
        """Buffer until the stream position reaches ``upto``; returns the buffered bytes once it does."""
        want = upto - (self.pos - len(self._buf))
        take = min(len(view), want - len(self._buf))
        self._buf += view[:take]
        self.pos += take
        if len(self._buf) < want:
            return None, view[take:]
        out = bytes(self._buf)
        self._buf = bytearray()
        return out, view[take:]

    def _skip_to(self, view: memoryview, target: int, then: str) -> memoryview:
        n = min(len(view), max(0, target - self.pos))
        self.pos += n
        if self.pos == target:
            self._phase = then
        return view[n:]

    def _step(self, view: memoryview) -> memoryview:
        phase = self._phase
        if phase == "footer":
            raw, view = self._need(view, C.FOOTER_SIZE)
            if raw is not None:
                self._on_footer(raw)
            return view
        assert self.footer is not None
        if phase == "to_header":
            return self._skip_to(view, self.footer.data_offset, "header")
        if phase == "header":
            raw, view = self._need(view, self.footer.data_offset + C.HEADER_SIZE)
            if raw is not None:
                self._on_header(raw)
            return view
        assert self.header is not None
        if phase == "to_bat":
            return self._skip_to(view, self.header.table_offset, "bat")
        if phase == "bat":
            raw, view = self._need(view, self.header.table_offset + 4 * self.header.max_table_entries)
            if raw is not None:
                self._on_bat(raw)
            return view
        if phase == "blocks":
            return self._step_block(view)
        # tail: the closing footer and anything after it is read and ignored
        self.pos += len(view)
        return view[len(view) :]

    def _step_block(self, view: memoryview) -> memoryview:
        assert self.header is not None
        if self._next >= len(self._blocks):
            self._phase = "tail"
            return view
        off, blk = self._blocks[self._next]
        if self.pos < off:
            return self._skip_to(view, off, "blocks")
        bm = bitmap_bytes(self.header.block_size)
        raw, view = self._need(view, off + bm + self.header.block_size)
        if raw is not None:
            self._apply_block(blk, raw[:bm], raw[bm:])
            self._next += 1
        return view

    # -- metadata ---------------------------------------------------------------------------------------------
    def _on_footer(self, raw: bytes) -> None:
        self.footer = stream_footer(raw)
        self.virtual_size = self.footer.current_size
        self._phase = "to_header"

    def _on_header(self, raw: bytes) -> None:
        assert self.footer is not None
        try:
            self.header = h = parse_header(raw, image=_NAME)
        except VhdError as e:
            raise CorruptImage(f"bad VHD header: {e}", field="header", image=_NAME) from None
        meta_end = self.footer.data_offset + C.HEADER_SIZE
        if h.table_offset < meta_end or h.table_offset > MAX_META:
            raise CorruptImage(f"BAT at {h.table_offset} is not after the header (streamed VHDs are read in order)",
                               field="header.table_offset", image=_NAME)
        if h.max_table_entries * 4 > MAX_META:
            raise CorruptImage(f"BAT of {h.max_table_entries} entries is implausibly large",
                               field="header.max_table_entries", image=_NAME)
        self._phase = "to_bat"

    def _on_bat(self, raw: bytes) -> None:
        assert self.header is not None
        h = self.header
        bs = h.block_size
        bm = bitmap_bytes(bs)
        entries = struct.unpack(f">{h.max_table_entries}I", raw)
        blocks = sorted((e * C.SECTOR, blk) for blk, e in enumerate(entries) if e != C.BAT_UNUSED)
        end = h.table_offset + len(raw)
        for off, blk in blocks:
            if off < end:
                raise CorruptImage(f"block {blk} at {off} overlaps the metadata or another block",
                                   field=f"BAT[{blk}]", image=_NAME)
            if blk * bs >= self.disk_size or blk * bs >= max(self.virtual_size, 1):
                raise OutOfRange(f"block {blk} lies beyond the disk ({self.disk_size} bytes)", image=_NAME)
            end = off + bm + bs
        self._blocks = blocks
        self.expected_length = end + C.FOOTER_SIZE
        if self.length is not None and self.length < end:
            raise IncompleteIO(f"the stream is {self.length} bytes but its BAT needs {end} (truncated VHD); "
                               f"nothing was written", image=_NAME)
        self._phase = "blocks"

    # -- data -------------------------------------------------------------------------------------------------
    def _apply_block(self, blk: int, bitmap: bytes, data: bytes) -> None:
        assert self.header is not None
        base = blk * self.header.block_size
        sectors = self.header.block_size // C.SECTOR
        s = 0
        while s < sectors:
            if not bitmap[s >> 3] & (0x80 >> (s & 7)):
                s += 1
                continue
            e = s
            while e < sectors and bitmap[e >> 3] & (0x80 >> (e & 7)):
                e += 1
            self._write_run(base + s * C.SECTOR, data[s * C.SECTOR : e * C.SECTOR])
            s = e

    def _write_run(self, offset: int, data: bytes) -> None:
        limit = min(self.disk_size, self.virtual_size)
        if offset >= limit:
            return
        data = data[: limit - offset]
        self._write(offset, data)
        self.bytes_written += len(data)

    def finish(self) -> None:
        """Raise :class:`IncompleteIO` unless every block the BAT announced has arrived."""
        if self._phase in ("footer", "to_header", "header", "to_bat", "bat"):
            raise IncompleteIO(f"truncated VHD: the stream ended in its {self._phase} ({self.pos} bytes)",
                               image=_NAME)
        if self._next < len(self._blocks):
            raise IncompleteIO(f"truncated VHD: {len(self._blocks) - self._next} of {len(self._blocks)} blocks "
                               f"missing after {self.pos} bytes", image=_NAME)


__all__ = ["VhdReceiver", "Writer", "stream_footer", "MAX_META"]
