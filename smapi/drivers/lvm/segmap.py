"""An LV's bytes without device-mapper: its segment map, and a Backing that does I/O through it.

lvm reports where each linear segment of an LV lies on its PVs (``lvs --segments -o seg_start_pe,seg_pe_ranges``
and ``pvs -o pe_start``). LV byte ``x`` of a segment starting at logical extent ``le`` and mapped to physical
extents ``A-B`` of a PV lives at ``pe_start + A*ext + (x - le*ext)`` on that PV. This is exactly what the kernel's
linear target would compute, so I/O through the map reads and writes the same bytes an activated LV would.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import weakref
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from smapi.drivers.lvm import loopdev
from smapi.drivers.lvm.rawlv import RawLv
from smapi.vhd.errors import ReadOnlyImage

Buffer = Union[bytes, bytearray, memoryview]

#: lvm's label lives in one of a PV's first four sectors: no LV byte can ever be there, whatever pe_start says
LABEL_AREA = 2048
#: ioctl BLKZEROOUT = _IO(0x12, 127): zero a byte range of a block device (a loop over a sparse file punches it)
BLKZEROOUT = 0x127F
_ZERO_CHUNK = 1 << 20


@dataclass(frozen=True)
class Extent:
    """One contiguous run of the LV: ``length`` bytes at ``lv_offset`` live at ``pv_offset`` on ``pv``."""

    lv_offset: int
    pv: str
    pv_offset: int
    length: int
    #: the PV's data offset (pe_start): nothing of an LV lies below it, only the PV label and lvm's metadata area
    pv_floor: int = field(default=0, compare=False)

    @property
    def lv_end(self) -> int:
        return self.lv_offset + self.length


class OutsideExtent(RuntimeError):
    """A write through a segment map would land outside the LV's extents: below the PV's pe_start (its label and
    metadata area) or past the extent. Always a bug (a stale or wrong map); raised before anything is written."""


def check_write(e: Extent, pv_offset: int, length: int, lv: str) -> None:
    floor = max(e.pv_floor, LABEL_AREA)
    if pv_offset < floor or pv_offset < e.pv_offset or pv_offset + length > e.pv_offset + e.length:
        raise OutsideExtent(f"refusing to write {length} bytes at {pv_offset} of {e.pv} for LV {lv}: its extent is "
                            f"[{e.pv_offset}, {e.pv_offset + e.length}) and the PV's data starts at {e.pv_floor} "
                            "(a stale or wrong segment map)")


def _close_fds(fds: Dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class UnsupportedSegment(ValueError):
    """A segment type other than linear (striped, mirrored, thin...) cannot be mapped by offset arithmetic."""


def build_map(segments: Sequence[Dict[str, str]], pe_start: Dict[str, int], extent_size: int) -> List[Extent]:
    """The extents of one LV from its ``lvs --segments`` rows (fields seg_start_pe, seg_pe_ranges, segtype)."""
    extents: List[Extent] = []
    for seg in sorted(segments, key=lambda s: int(s["seg_start_pe"])):
        segtype = seg.get("segtype", "linear")
        if segtype != "linear":
            raise UnsupportedSegment(f"segment type {segtype} cannot be reached without device-mapper")
        le = int(seg["seg_start_pe"])
        for rng in seg["seg_pe_ranges"].split():
            pv, _, span = rng.rpartition(":")
            first, _, last = span.partition("-")
            a, b = int(first), int(last)
            count = b - a + 1
            start = pe_start[pv]
            if start < LABEL_AREA:
                raise ValueError(f"PV {pv}: pe_start {start} lies inside the PV label")
            extents.append(Extent(le * extent_size, pv, start + a * extent_size, count * extent_size, start))
            le += count
    _check_contiguous(extents)
    return _merge(extents)


def _check_contiguous(extents: List[Extent]) -> None:
    pos = 0
    for e in extents:
        if e.lv_offset != pos:
            raise ValueError(f"segment map has a hole at LV offset {pos}")
        pos = e.lv_end


def _merge(extents: List[Extent]) -> List[Extent]:
    """Join neighbours that are also adjacent on the PV (fewer splits per I/O)."""
    out: List[Extent] = []
    for e in extents:
        if out and out[-1].pv == e.pv and out[-1].pv_offset + out[-1].length == e.pv_offset:
            last = out.pop()
            e = Extent(last.lv_offset, e.pv, last.pv_offset, last.length + e.length, max(last.pv_floor, e.pv_floor))
        out.append(e)
    return out


def split(extents: Sequence[Extent], offset: int, length: int) -> Iterator[Tuple[Extent, int, int]]:
    """Pieces of ``[offset, offset+length)``: (extent, byte offset inside the request, piece length)."""
    done = 0
    for e in extents:
        if done >= length:
            return
        pos = offset + done
        if pos >= e.lv_end or pos < e.lv_offset:
            continue
        take = min(e.lv_end - pos, length - done)
        yield e, done, take
        done += take


def zero_range(fd: int, offset: int, length: int) -> None:
    """Make ``length`` bytes at ``offset`` of a block device read as zeros: BLKZEROOUT (cheap on loop devices and
    thin-provisioning arrays), else explicit zero writes (regular files in tests, odd devices)."""
    if length <= 0:
        return
    if offset % 512 == 0 and length % 512 == 0:
        try:
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", offset, length))
            return
        except OSError:
            pass
    zeros = bytes(min(length, _ZERO_CHUNK))
    done = 0
    while done < length:
        n = min(len(zeros), length - done)
        os.pwrite(fd, zeros[:n], offset + done)
        done += n


#: reloads the map after lvm changed the LV: () -> extents
MapLoader = Callable[[], List[Extent]]
#: grows or shrinks the LV with lvm: (new size in bytes) -> None
LvResizer = Callable[[int], None]


def drop_cached(pv: str, fd: int, extents: Sequence[Extent]) -> None:
    """Drop this host's page cache of `extents` of PV `pv` (open as `fd`), so that reads go to the device.

    Hosts of a shared SR each have their own block device for the LUN, and so their own page cache of it: after
    another host changed an LV (under the SR lease, or while it held the VDI's activation lease), pages this host
    read earlier are stale. sanlock hands a lease over only after the holder's writes reached the device (verbs
    fsync what they wrote before they release, a server fsyncs when it stops), so dropping the clean pages once
    the lease is held is enough; dirty pages (this host's own, newer writes) are never dropped by the kernel.
    A loop device (the userspace iSCSI initiator's LUN file, a test's shared image) reads through the page cache
    of its backing file as well: that file's range is dropped too."""
    for e in extents:
        os.posix_fadvise(fd, e.pv_offset, e.length, os.POSIX_FADV_DONTNEED)
    backing = loopdev.backing_file(pv) if os.path.basename(pv).startswith("loop") else None
    if not backing:
        return
    base = loopdev.backing_offset(pv)
    with contextlib.suppress(OSError):  # a backing file this process may not open: the device's cache is gone
        bfd = os.open(backing, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for e in extents:
                os.posix_fadvise(bfd, base + e.pv_offset, e.length, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(bfd)


class SegmentMapBacking(RawLv):
    """The LV as a flat byte array: positional I/O split at extent boundaries onto the PV devices.

    ``size()`` is the LV size (whole extents). ``resize`` runs lvm (``resizer``), reloads the map and zeroes the
    new bytes, so growth reads as zeros as the Backing protocol requires.
    """

    def __init__(self, name: str, extents: List[Extent], *, writable: bool = False,
                 loader: Optional[MapLoader] = None, resizer: Optional[LvResizer] = None,
                 uncached: bool = False) -> None:
        self.name = name
        self.writable = writable
        #: a PV other hosts write too (a shared SR): this host's page cache of the LV may be stale, so what it
        #: holds of the LV's extents is dropped when a PV is first opened and after a resize (see drop_cached)
        self.uncached = uncached
        self._loader = loader
        self._resizer = resizer
        self._fds: Dict[str, int] = {}
        # A backing nobody closed must not keep the PV open: a held loop device cannot be detached (the kernel
        # defers it to the last close), so a leaked descriptor would pin the PV's loop device for the process' life.
        self._finalizer = weakref.finalize(self, _close_fds, self._fds)
        self._dirty: set = set()
        self._set_map(extents)

    def _set_map(self, extents: List[Extent]) -> None:
        for e in extents:
            if e.pv_offset < max(e.pv_floor, LABEL_AREA if e.pv_floor else 0):
                raise OutsideExtent(f"LV {self.name}: extent at {e.pv_offset} of {e.pv} lies below the PV's data "
                                    f"offset {e.pv_floor}")
        self.extents = list(extents)
        self._size = self.extents[-1].lv_end if self.extents else 0

    def _fd(self, pv: str) -> int:
        fd = self._fds.get(pv)
        if fd is None:
            flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC
            fd = self._fds[pv] = os.open(pv, flags)
            if self.uncached:
                drop_cached(pv, fd, [e for e in self.extents if e.pv == pv])
        return fd

    # -- reads ------------------------------------------------------------------------------------------------
    def pread(self, length: int, offset: int) -> bytes:
        buf = bytearray(max(0, min(length, self._size - offset)))
        n = self.readinto(memoryview(buf), offset)
        return bytes(buf[:n])

    def readinto(self, buf: memoryview, offset: int) -> int:
        view = memoryview(buf).cast("B")
        want = max(0, min(len(view), self._size - offset))
        for e, at, take in split(self.extents, offset, want):
            fd = self._fd(e.pv)
            src = e.pv_offset + (offset + at - e.lv_offset)
            got = 0
            while got < take:
                n = os.preadv(fd, [view[at + got : at + take]], src + got)
                if n <= 0:  # the PV is shorter than lvm believes: report a short read, never invent bytes
                    return at + got
                got += n
        return want

    # -- writes -----------------------------------------------------------------------------------------------
    def pwrite(self, data: Buffer, offset: int) -> None:
        if not self.writable:
            raise ReadOnlyImage("write to a read-only LV", image=self.name)
        view = memoryview(data).cast("B")
        end = offset + len(view)
        if end > self._size:
            # An LV cannot grow by writing past its end; the caller (the image layer) inflates first.
            raise OSError(28, f"write {len(view)}@{offset} past the end of LV {self.name} ({self._size} bytes)")
        for e, at, take in split(self.extents, offset, len(view)):
            fd = self._fd(e.pv)
            dst = e.pv_offset + (offset + at - e.lv_offset)
            check_write(e, dst, take, self.name)
            done = 0
            while done < take:
                done += os.pwrite(fd, view[at + done : at + take], dst + done)
            self._dirty.add(e.pv)

    def pwritev(self, buffers: List[Buffer], offset: int) -> None:
        # Joining costs one copy but keeps one code path splitting at extent boundaries.
        if len(buffers) == 1:
            self.pwrite(buffers[0], offset)
            return
        self.pwrite(b"".join(bytes(memoryview(b).cast("B")) for b in buffers), offset)

    def zero(self, offset: int, length: int) -> None:
        """Zero a range of the LV (new extents are never zeroed by lvm without device-mapper)."""
        if not self.writable:
            raise ReadOnlyImage("zeroing a read-only LV", image=self.name)
        for e, at, take in split(self.extents, offset, min(length, self._size - offset)):
            dst = e.pv_offset + (offset + at - e.lv_offset)
            check_write(e, dst, take, self.name)
            zero_range(self._fd(e.pv), dst, take)
            self._dirty.add(e.pv)

    # -- size -------------------------------------------------------------------------------------------------
    def size(self) -> int:
        return self._size

    def device_extents(self) -> Optional[List[Tuple[str, int, int]]]:
        return [(e.pv, e.pv_offset, e.length) for e in self.extents]

    def reload(self) -> None:
        """Re-read the map from lvm (after another process resized the LV)."""
        if self._loader is None:
            raise RuntimeError(f"{self.name}: no map loader")
        self._set_map(self._loader())
        if self.uncached:  # new extents were other LVs' before: what this host cached of them is not this LV
            for pv, fd in self._fds.items():
                drop_cached(pv, fd, [e for e in self.extents if e.pv == pv])

    def resize(self, size: int, *, zero: bool = True) -> None:
        """lvresize to ``size`` (rounded up to extents by lvm); ``zero=False`` skips zeroing the new bytes, for
        callers that overwrite them before anything reads them."""
        if not self.writable:
            raise ReadOnlyImage("resize of a read-only LV", image=self.name)
        if self._resizer is None:
            raise RuntimeError(f"{self.name}: no resizer")
        old = self._size
        self.flush()  # data on the extents being dropped or kept must not be reordered around the lvm commit
        self._resizer(size)
        self.reload()
        if zero and self._size > old:
            self.zero(old, self._size - old)

    def flush(self) -> None:
        for pv in list(self._dirty):
            os.fsync(self._fds[pv])
        self._dirty.clear()

    def close(self) -> None:
        try:
            if self.writable:
                self.flush()
        finally:
            _close_fds(self._fds)
