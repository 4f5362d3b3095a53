"""A VDI's image inside its LV, presented to the VHD library as a file.

The VHD library treats its backing like a file: the primary footer sits at ``size() - 512``, allocation appends
past the end, and after each commit it truncates the file to end just after the footer. An LV cannot work like
that (it is sized in whole extents, and resizing costs an lvm metadata commit), so a volume keeps a *logical
size* — the VHD's "file" size — separate from the LV size:

* Writes past the LV's end grow the LV first (by a :class:`GrowthPolicy` step, so sequential writers rarely
  wait); shrinking the logical size never shrinks the LV.
* The LV's last sector always holds a copy of the VHD footer (the classic LVHD convention, where
  ``vhd-util modify -s`` moves the footer to the end of the LV), so a VHD opened later — by us, by qemu through a
  raw offset/size, or by blktap — finds its footer at the end of the LV. The copy is refreshed on ``flush``.
* Opening validates that copy against the backup footer at offset 0: an LV extended or reduced by a process
  that died before refreshing it ends in stale bytes (possibly another image's footer from reused extents).
* Thick SRs inflate a visible (non-hidden) VHD to its full size at the first flush that reveals its virtual size
  (creation, resize); any SR deflates a hidden VHD (a snapshot's parent, which never grows again) when it closes.

Raw volumes hold exactly their data; their byte size (not a multiple of the extent size in general) is kept in
an LV tag by the substrate.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple, Union

from smapi.drivers.lvm.provision import GrowthPolicy, deflated_lv_size, raw_lv_size, thick_lv_size
from smapi.drivers.lvm.rawlv import RawLv
from smapi.vhd import Backing, VhdImage
from smapi.vhd.errors import ReadOnlyImage, VhdError
from smapi.vhd.structs import parse_footer, parse_header

Buffer = Union[bytes, bytearray, memoryview]
SECTOR = 512
FOOTER_COOKIE = b"conectix"
_UUID = slice(68, 84)  # the footer's unique id field
_SPARSE_TYPES = (3, 4)  # dynamic, differencing


class _Volume(Backing):
    """Shared plumbing: a logical size over a raw LV backing."""

    def __init__(self, raw: RawLv, logical: int) -> None:
        self.raw = raw
        self.name = raw.name
        self.writable = raw.writable
        self._logical = logical

    def size(self) -> int:
        return self._logical

    def lv_size(self) -> int:
        return self.raw.size()

    def pread(self, length: int, offset: int) -> bytes:
        length = max(0, min(length, self._logical - offset))
        return self.raw.pread(length, offset) if length else b""

    def readinto(self, buf: memoryview, offset: int) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._logical - offset))
        return self.raw.readinto(view[:n], offset) if n else 0

    def _check_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyImage("write to a read-only volume", image=self.name)

    def pwritev(self, buffers: List[Buffer], offset: int) -> None:
        self._check_writable()
        total = sum(len(memoryview(b).cast("B")) for b in buffers)
        self._make_room(offset + total)
        self.raw.pwritev(buffers, offset)
        self._logical = max(self._logical, offset + total)

    def pwrite(self, data: Buffer, offset: int) -> None:
        self.pwritev([data], offset)

    def _make_room(self, end: int) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()

    def mtime(self) -> Optional[float]:
        return None  # LVs have no mtime; the VHD library then uses the parent's creation time

    def device_extents(self) -> Optional[List[Tuple[str, int, int]]]:
        return self.raw.device_extents()


class RawVolume(_Volume):
    """Raw data: the first ``logical`` bytes of the LV. ``on_size`` persists a new logical size."""

    def __init__(self, raw: RawLv, logical: int, *, extent_size: int,
                 on_size: Optional[Callable[[int], None]] = None) -> None:
        super().__init__(raw, logical)
        self._extent = extent_size
        self._on_size = on_size

    def _make_room(self, end: int) -> None:
        if end > self._logical:
            self.resize(end)

    def resize(self, size: int) -> None:
        self._check_writable()
        if size > self.raw.size():
            self.raw.resize(raw_lv_size(size, self._extent), zero=False)
        if size > self._logical:
            # Extents are never zeroed by lvm, and old bytes past the logical end may be stale: zero them.
            self.raw.zero(self._logical, size - self._logical)
        elif raw_lv_size(size, self._extent) < self.raw.size():
            self.raw.resize(raw_lv_size(size, self._extent), zero=False)
        self._logical = size
        if self._on_size is not None:
            self._on_size(size)


class VhdVolume(_Volume):
    """A VHD in an LV, provisioned thick or thin (see the module docstring)."""

    def __init__(self, raw: RawLv, *, extent_size: int, thick: bool, logical: Optional[int] = None) -> None:
        super().__init__(raw, raw.size() if logical is None else logical)
        self._extent = extent_size
        self._thick = thick
        #: the footer bytes last copied to the LV's end, and the LV size they were copied at
        self._mirrored: Optional[bytes] = None
        self._mirrored_at = 0
        self._tail_override: Optional[bytes] = None
        self._closed = False
        #: cleared by deflate(): a volume deflated on purpose is not inflated again by the same session
        self._may_inflate = thick
        #: an image that existed before this session (checked for inflation at its first allocation)
        self._existing = logical is None
        self._data_end: Optional[int] = None
        if logical is None:
            self._validate_tail()

    # -- the footer copy at the end of the LV -------------------------------------------------------------------
    def _validate_tail(self) -> None:
        """Make sure the LV-end footer belongs to this image; else fall back to the backup footer at 0."""
        size = self.raw.size()
        if size < 2 * SECTOR:
            return
        head = self.raw.pread(SECTOR, 0)
        if head[:8] != FOOTER_COOKIE or _disk_type(head) not in _SPARSE_TYPES:
            return  # not a sparse VHD (yet): nothing to validate against
        tail = self.raw.pread(SECTOR, size - SECTOR)
        if tail[:8] == FOOTER_COOKIE and tail[_UUID] == head[_UUID]:
            self._mirrored, self._mirrored_at = tail, size
            return
        if self.writable:
            self.raw.pwrite(head, size - SECTOR)
            self.raw.flush()
            self._mirrored, self._mirrored_at = head, size
        else:
            self._tail_override = head

    def pread(self, length: int, offset: int) -> bytes:
        data = super().pread(length, offset)
        return self._patch_tail(data, offset)

    def readinto(self, buf: memoryview, offset: int) -> int:
        n = super().readinto(buf, offset)
        if self._tail_override is not None and n:
            view = memoryview(buf).cast("B")
            view[:n] = self._patch_tail(bytes(view[:n]), offset)
        return n

    def _patch_tail(self, data: bytes, offset: int) -> bytes:
        if self._tail_override is None or not data:
            return data
        start = self.raw.size() - SECTOR
        end = offset + len(data)
        if end <= start:
            return data
        lo = max(offset, start)
        out = bytearray(data)
        out[lo - offset : end - offset] = self._tail_override[lo - start : end - start]
        return bytes(out)

    def _current_footer(self) -> Optional[bytes]:
        if self._logical < SECTOR:
            return None
        tail = self.raw.pread(SECTOR, self._logical - SECTOR)
        return tail if tail[:8] == FOOTER_COOKIE else None

    def _mirror(self, force: bool = False) -> None:
        """Copy the VHD's footer (at the logical end) to the LV's last sector when they differ."""
        lv = self.raw.size()
        if self._logical >= lv:
            self._mirrored = None  # the footer is the LV's last sector already
            return
        footer = self._current_footer()
        if footer is None or (footer == self._mirrored and self._mirrored_at == lv and not force):
            return
        if footer[_UUID] != self.raw.pread(SECTOR, 0)[_UUID]:
            return  # guest data that happens to look like a footer, mid-allocation: the real one comes next
        self.raw.pwrite(footer, lv - SECTOR)
        self.raw.flush()
        self._mirrored, self._mirrored_at = footer, lv

    # -- growth -------------------------------------------------------------------------------------------------
    def _full_size(self) -> int:
        """Fully inflated LV size from the image's own metadata; 0 when it is not a sparse VHD."""
        head = self.raw.pread(3 * SECTOR, 0)
        if head[:8] != FOOTER_COOKIE or _disk_type(head) not in _SPARSE_TYPES:
            return 0
        try:
            footer = parse_footer(head[:SECTOR])
            header = parse_header(head[SECTOR : 3 * SECTOR])
        except VhdError:
            return 0
        return thick_lv_size(footer.current_size, self._extent, block_size=header.block_size,
                             entries=header.max_table_entries)

    def _grow_lv(self, size: int) -> None:
        self.raw.resize(size, zero=False)
        self._mirror(force=True)  # the new last sector holds stale bytes until then

    def _make_room(self, end: int) -> None:
        lv = self.raw.size()
        if end <= lv:
            return
        full = self._full_size() if self._thick else 0
        if full and self._may_inflate and not self.is_hidden():
            self._grow_lv(max(full, GrowthPolicy(self._extent, step=0).target(end, lv)))
            return
        self._grow_lv(GrowthPolicy(self._extent, cap=full).target(end, lv))

    def pwritev(self, buffers: List[Buffer], offset: int) -> None:
        if self._may_inflate and self._existing:
            end = offset + sum(len(memoryview(b).cast("B")) for b in buffers)
            if self._data_end is None:
                self._data_end = self.physical_end()
            if end > self._data_end:
                # A block allocation in an existing image: a thick leaf (also one made by snapshot or clone)
                # holds its full size from its first new block on. Footer rewrites never reach past the data.
                self._existing = False
                self._inflate_if_thick(differencing=True)
        super().pwritev(buffers, offset)

    def resize(self, size: int) -> None:
        self._check_writable()
        self._make_room(size)
        if size > self._logical:
            self.raw.zero(self._logical, size - self._logical)
        self._logical = size

    def _inflate_if_thick(self, *, differencing: bool = False) -> None:
        """Thick SRs reserve a new VDI's full size when it is created (its first flush). A differencing leaf
        (made by snapshot or clone) is inflated by its first write instead: the engine creates it before it hides
        the base, and a read-only snapshot need never hold more than its metadata."""
        if not self._may_inflate:
            return
        kinds = _SPARSE_TYPES if differencing else (3,)
        if _disk_type(self.raw.pread(SECTOR, 0)) not in kinds or self.is_hidden():
            return
        full = self._full_size()
        if full > self.raw.size():
            self._grow_lv(full)

    def device_extents(self) -> Optional[List[Tuple[str, int, int]]]:
        # A server doing its own I/O on the PVs cannot grow the LV: a writable thick leaf takes the full size its
        # first new block would give it here (through lvm), before the server starts.
        if self.writable:
            self._inflate_if_thick(differencing=True)
            self.raw.flush()
        return self.raw.device_extents()

    def inflate(self) -> None:
        """Grow the LV to the image's fully allocated size (a thin leaf about to be served: the server then never
        needs lvm). Undone by :meth:`deflate`."""
        self._check_writable()
        full = self._full_size()
        if full > self.raw.size():
            self._grow_lv(full)

    def is_hidden(self) -> bool:
        footer = self._current_footer() or self.raw.pread(SECTOR, 0)
        return footer[:8] == FOOTER_COOKIE and footer[85] != 0

    def physical_end(self) -> int:
        """Where the VHD's bytes end (last block or metadata, plus the footer), from its own BAT."""
        head = self.raw.pread(SECTOR, 0)
        if head[:8] != FOOTER_COOKIE or _disk_type(head) not in _SPARSE_TYPES:
            return self._logical
        img = VhdImage.open(self, writable=False, owns_backing=False)
        try:
            return img.end_of_data() + SECTOR
        finally:
            img.close()

    def deflate(self) -> None:
        """Shrink the LV to the extents the VHD uses, moving the footer copy to the new end of the LV."""
        self._check_writable()
        self._may_inflate = False
        end = self.physical_end()
        target = deflated_lv_size(end, self._extent)
        if end > SECTOR and target < self.raw.size():
            self.raw.flush()
            self._logical = min(self._logical, end)
            self.raw.resize(target, zero=False)
            self._mirror(force=True)

    def flush(self) -> None:
        self.raw.flush()
        if self.writable:
            self._inflate_if_thick()
            self._mirror()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.writable:
                self.flush()
                if self.is_hidden():
                    self.deflate()
        finally:
            self.raw.close()


def _disk_type(footer: bytes) -> int:
    return int.from_bytes(footer[60:64], "big")
