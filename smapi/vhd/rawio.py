"""Raw image import and export, block by block through one page-aligned buffer, skipping zeros.

Zero blocks are detected by comparing ``bytes`` objects (a memcmp), never memoryviews (per-element, 50x slower;
reference doc §5.3); they stay unallocated on import and become holes on export.
"""

from typing import Callable, Optional

from . import constants as C
from .backing import Backing, aligned_buffer
from .chain import Chain
from .create import create_fixed_on, create_sparse_on
from .errors import InvalidArgument
from .image import VhdImage

_ZEROS = bytes(C.MAX_BLOCK_SIZE)
Progress = Optional[Callable[[int, int], None]]


def is_zero(buf: "bytes | bytearray") -> bool:
    n = len(buf)
    return buf == (_ZEROS if n == len(_ZEROS) else _ZEROS[:n]) if n <= len(_ZEROS) else buf.count(0) == n


def import_raw_into(src: Backing, dst: Backing, *, fixed: bool = False, block_size: int = C.DEFAULT_BLOCK_SIZE,
                    size: Optional[int] = None, progress: Progress = None) -> VhdImage:
    """Create a dynamic (or fixed) VHD on ``dst`` holding ``src``'s bytes; returns the open image.

    The virtual size is the raw size rounded up to a sector (not to a block, so export gives the same bytes back).
    Metadata is committed once, at the end: the new image is not in use until this returns.
    """
    raw_size = src.size() if size is None else size
    if raw_size <= 0:
        raise InvalidArgument("raw source is empty")
    vsize = C.pad512(raw_size)
    if fixed:
        create_fixed_on(dst, vsize)
    else:
        create_sparse_on(dst, vsize, block_size=block_size, round_to_block=False)
    img = VhdImage.open(dst, writable=True, owns_backing=False)
    buf = aligned_buffer(block_size)
    mv = memoryview(buf)
    try:
        off = 0
        while off < raw_size:
            n = min(block_size, raw_size - off)
            got = src.readinto(mv[:n], off)
            if got != n:
                raise InvalidArgument(f"raw source shrank while reading at {off}")
            chunk = buf[:n]  # a bytes copy: the fast way to test for zeros
            if not is_zero(chunk):
                if n % C.SECTOR:
                    pad = C.pad512(n)
                    mv[n:pad] = bytes(pad - n)
                    n = pad
                img.write_at(off, mv[:n])
            off += block_size
            if progress is not None:
                progress(min(off, raw_size), raw_size)
        img.commit()
        dst.flush()
    finally:
        # Slices may still be referenced by a traceback; the mmap is freed with its last reference.
        mv.release()
    return img


def export_raw_from(chain: Chain, dst: Backing, *, sparse: bool = True, progress: Progress = None) -> int:
    """Write the chain's virtual disk to ``dst`` as raw bytes; unallocated and zero blocks become holes.

    ``dst`` is truncated and resized to the virtual size first (its new bytes must read as zeros). Returns the
    number of bytes actually written.
    """
    size = chain.size
    chunk = chain.block_size
    amap = chain.allocation_map() if sparse else None
    dst.resize(0)
    dst.resize(size)
    buf = aligned_buffer(chunk)
    mv = memoryview(buf)
    written = 0
    try:
        off = 0
        while off < size:
            n = min(chunk, size - off)
            if amap is None or amap[off // chunk]:
                chain.readinto(mv[:n], off)
                if not sparse or not is_zero(buf[:n]):
                    dst.pwrite(mv[:n], off)
                    written += n
            off += n
            if progress is not None:
                progress(off, size)
        dst.flush()
    finally:
        # Slices may still be referenced by a traceback; the mmap is freed with its last reference.
        mv.release()
    return written
