"""A leaf image and its ancestors read as one virtual disk.

Reads resolve the *owner* of each block across the chain first (the topmost image whose BAT has it), so a block
fully present in one image costs one ``preadv`` whatever the depth; only partially written blocks fall back to
per-sector bitmap runs that recurse into the parent (reference doc §5.1).
"""

from contextlib import contextmanager
from typing import Iterator, List, Optional, Set, Union

from . import bitmaps
from . import constants as C
from .backing import Backing
from .buffers import zero_fill
from .errors import (
    ChainLoop,
    ChainTooDeep,
    InvalidArgument,
    OutOfRange,
    ParentMismatch,
    ParentNotFound,
    ReadOnlyImage,
    UnsafeParentPath,
    VhdError,
)
from .image import VhdImage
from .parents import parent_candidates
from .resolver import ParentResolver

Buffer = Union[bytes, bytearray, memoryview]


class Chain:
    """``images[0]`` is the leaf, ``images[-1]`` the base. Only the leaf is ever written through a chain."""

    def __init__(self, images: List[VhdImage], names: Optional[List[str]] = None) -> None:
        if not images:
            raise InvalidArgument("empty chain")
        self.images = images
        self.names = names or [img.name for img in images]
        self._batch_depth = 0
        self._uniform = len({img.block_size for img in images if not img.is_fixed}) <= 1

    @property
    def leaf(self) -> VhdImage:
        return self.images[0]

    @property
    def depth(self) -> int:
        """Number of images in the chain (1 for a lone image)."""
        return len(self.images)

    @property
    def size(self) -> int:
        """Virtual size of the disk (the leaf's)."""
        return self.leaf.virtual_size

    @property
    def block_size(self) -> int:
        return self.leaf.block_size

    # ------------------------------------------------------------------------------------------------ reads
    def read(self, offset: int, length: int) -> bytes:
        """Return ``length`` bytes of the virtual disk at ``offset`` (any alignment)."""
        buf = bytearray(length)
        self.readinto(buf, offset)
        return bytes(buf)

    def readinto(self, buf: Buffer, offset: int) -> int:
        """Fill ``buf`` with the virtual disk's bytes from ``offset``; returns ``len(buf)``."""
        view = memoryview(buf).cast("B")
        n = len(view)
        if offset < 0 or n < 0 or offset + n > self.size:
            raise OutOfRange(f"read {n}@{offset} outside the virtual disk (size {self.size})", image=self.leaf.name)
        if self._uniform and not self.leaf.is_fixed:
            self._read_fast(view, offset)
        else:
            self._read_level(0, view, offset)
        return n

    def _read_fast(self, view: memoryview, offset: int) -> None:
        """Owner-first path for chains whose images share one block size (every blktap chain)."""
        images = self.images
        bs = self.leaf.block_size
        n = len(view)
        pos = 0
        while pos < n:
            voff = offset + pos
            blk, inb = divmod(voff, bs)
            take = min(bs - inb, n - pos)
            sub = view[pos : pos + take]
            end = voff + take
            for i, img in enumerate(images):
                if end > img.virtual_size:
                    self._read_level(i, sub, voff)
                    break
                if img.is_fixed:
                    img.read_raw(sub, voff)
                    break
                data_off = img.block_data_offset(blk)
                if data_off is None:
                    continue
                if img.block_full(blk):
                    img.read_raw(sub, data_off + inb)
                else:
                    self._read_partial(i, img, blk, inb, data_off, sub, voff)
                break
            else:
                zero_fill(sub)
            pos += take

    def _read_level(self, i: int, view: memoryview, offset: int) -> None:
        """Generic recursive read of level ``i`` (handles differing block sizes and sizes between levels)."""
        if i >= len(self.images):
            zero_fill(view)
            return
        img = self.images[i]
        n = len(view)
        if offset + n > img.virtual_size:
            inside = max(0, img.virtual_size - offset)
            zero_fill(view[inside:])
            view = view[:inside]
            n = inside
        if n == 0:
            return
        if img.is_fixed:
            img.read_raw(view, offset)
            return
        bs = img.block_size
        pos = 0
        while pos < n:
            voff = offset + pos
            blk, inb = divmod(voff, bs)
            take = min(bs - inb, n - pos)
            sub = view[pos : pos + take]
            data_off = img.block_data_offset(blk)
            if data_off is None:
                self._read_level(i + 1, sub, voff)
            elif img.block_full(blk):
                img.read_raw(sub, data_off + inb)
            else:
                self._read_partial(i, img, blk, inb, data_off, sub, voff)
            pos += take

    def _read_partial(self, i: int, img: VhdImage, blk: int, inb: int, data_off: int, sub: memoryview,
                      voff: int) -> None:
        bits = bitmaps.bit_string(img.bitmap(blk), img.sectors_per_block)
        end = inb + len(sub)
        for a, z, is_set in bitmaps.runs(bits, inb // C.SECTOR, C.ceil_div(end, C.SECTOR)):
            lo = max(a * C.SECTOR, inb) - inb
            hi = min(z * C.SECTOR, end) - inb
            if is_set:
                img.read_raw(sub[lo:hi], data_off + inb + lo)
            else:
                self._read_level(i + 1, sub[lo:hi], voff + lo)

    def allocated(self, offset: int, length: int) -> bool:
        """True if any image of the chain has a block allocated that overlaps the range (metadata only)."""
        for img in self.images:
            if img.is_fixed:
                return True
            if offset >= img.virtual_size:
                continue
            bs = img.block_size
            first = offset // bs
            last = (min(offset + length, img.virtual_size) - 1) // bs
            bat = img.bat
            for blk in range(first, min(last + 1, len(bat))):
                if bat[blk] != C.BAT_UNUSED:
                    return True
        return False

    def allocation_map(self, block_size: Optional[int] = None, only: Optional[Set[bytes]] = None) -> bytearray:
        """One byte per block of the virtual disk (``block_size``, default the leaf's): 1 where any image of the
        chain (or of those whose uuid is in ``only``) allocates some of it.

        Metadata only (BATs); the data of a mapped block may still be all zeros.
        """
        bs = block_size or self.block_size
        nblocks = C.ceil_div(self.size, bs)
        out = bytearray(nblocks)
        for img in self.images:
            if only is not None and img.uuid not in only:
                continue
            if img.is_fixed:
                hi = min(nblocks, C.ceil_div(img.virtual_size, bs))
                out[:hi] = b"\x01" * hi
                continue
            ibs = img.block_size
            limit = C.ceil_div(min(img.virtual_size, self.size), ibs)
            for blk, e in enumerate(img.bat):
                if blk >= limit:
                    break
                if e != C.BAT_UNUSED:
                    lo = blk * ibs // bs
                    hi = min(nblocks, C.ceil_div((blk + 1) * ibs, bs))
                    out[lo:hi] = b"\x01" * (hi - lo)
        return out

    # ------------------------------------------------------------------------------------------------ writes
    def write(self, offset: int, data: Buffer) -> None:
        """Write ``data`` at any byte ``offset`` into the leaf; unaligned edges are merged with the chain view."""
        leaf = self.leaf
        if not leaf.writable:
            raise ReadOnlyImage("chain opened read-only", image=leaf.name)
        view = memoryview(data).cast("B")
        n = len(view)
        if offset < 0 or offset + n > self.size:
            raise OutOfRange(f"write {n}@{offset} outside the virtual disk (size {self.size})", image=leaf.name)
        if n == 0:
            return
        start = offset - offset % C.SECTOR
        end = C.ceil_div(offset + n, C.SECTOR) * C.SECTOR
        if start != offset or end != offset + n:
            # Read-modify-write of the partial head/tail sectors only.
            # A virtual size that is not a multiple of 512 ends in a partial sector: read only what lies inside.
            merged = bytearray(end - start)
            mv = memoryview(merged)
            size = self.size
            self.readinto(mv[: min(C.SECTOR, size - start)], start)
            last = end - C.SECTOR
            if last > start:
                self.readinto(mv[last - start : last - start + min(C.SECTOR, size - last)], last)
            mv[offset - start : offset - start + n] = view
            view = mv
            offset = start
        leaf.write_at(offset, view)
        if self._batch_depth == 0:
            leaf.commit()

    @contextmanager
    def batch(self) -> Iterator["Chain"]:
        """Defer the metadata commit of many writes to the end of the block (one set of barriers)."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.leaf.commit()

    def flush(self) -> None:
        """Make every completed write durable. A commit ends with a barrier already; a second one per NBD flush
        or FUA write was pure cost."""
        leaf = self.leaf
        if leaf.writable:
            if leaf.pending:
                leaf.commit()
            else:
                leaf.backing.flush()

    def close(self) -> None:
        err: Optional[BaseException] = None
        for img in self.images:
            try:
                img.close()
            except BaseException as e:  # close every level even if one fails
                err = err or e
        if err is not None:
            raise err

    def __enter__(self) -> "Chain":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_parent_image(child: VhdImage, resolver: ParentResolver, *, writable: bool = False) -> "tuple[VhdImage, str]":
    """Open the parent named by ``child``'s locators through ``resolver`` and check its UUID.

    Candidates are tried in blktap order (MacX, W2ku, W2ru, then the header's parent name); unsafe ones (absolute,
    ``..``) are skipped. Raises :class:`UnsafeParentPath` if only unsafe names exist, :class:`ParentNotFound` if
    none opens, :class:`ParentMismatch` if the image found has another UUID.
    """
    assert child.header is not None
    unsafe: List[str] = []
    tried: List[str] = []
    for cand in parent_candidates(child):
        if isinstance(cand, UnsafeParentPath):
            unsafe.append(cand.reason)
            continue
        if cand in tried:
            continue
        tried.append(cand)
        try:
            backing: Backing = resolver.open_parent(cand, writable=writable)
        except ParentNotFound:
            continue
        except UnsafeParentPath as e:
            unsafe.append(e.reason)
            continue
        try:
            parent = VhdImage.open(backing, name=backing.name, writable=writable)
        except BaseException:
            backing.close()
            raise
        if parent.uuid != child.header.parent_uuid:
            parent.close()
            raise ParentMismatch(f"parent {cand!r} has UUID {_u(parent.uuid)}, child expects "
                                 f"{_u(child.header.parent_uuid)}", image=child.name)
        return parent, cand
    if unsafe and not tried:
        raise UnsafeParentPath("; ".join(unsafe), image=child.name)
    raise ParentNotFound(f"no parent found (tried {', '.join(repr(t) for t in tried) or 'nothing'})",
                         image=child.name)


def build_chain(leaf: VhdImage, resolver: Optional[ParentResolver], *, max_depth: int = C.MAX_CHAIN_DEPTH) -> Chain:
    """Follow parent links from ``leaf``; detects loops (by UUID) and enforces ``max_depth`` before opening more."""
    images = [leaf]
    names = [leaf.name]
    seen: Set[bytes] = {leaf.uuid}
    try:
        cur = leaf
        while cur.is_differencing:
            if resolver is None:
                raise ParentNotFound("image has a parent but no resolver was given", image=cur.name)
            if len(images) >= max_depth:
                raise ChainTooDeep(f"chain is deeper than {max_depth} images", image=leaf.name)
            assert cur.header is not None
            if cur.header.parent_uuid in seen:
                raise ChainLoop(f"parent UUID {_u(cur.header.parent_uuid)} is already in the chain", image=cur.name)
            parent, pname = open_parent_image(cur, resolver)
            images.append(parent)
            names.append(pname)
            seen.add(parent.uuid)
            cur = parent
    except BaseException:
        for img in images[1:]:
            img.close()
        raise
    return Chain(images, names)


def _u(raw: Optional[bytes]) -> str:
    import uuid

    return str(uuid.UUID(bytes=raw)) if raw and len(raw) == 16 else "none"


__all__ = ["Chain", "build_chain", "open_parent_image", "VhdError"]
