"""Coalesce: copy a child's sectors into its immediate parent, in place, in crash-safe batches.

As ``vhd-util coalesce``, the child is left untouched: afterwards the caller re-points the child's children at the
parent (:func:`smapi.vhd.set_parent`) and deletes the child. The parent must have no other children, since its
content changes.
"""

from typing import Callable, Optional

from . import bitmaps
from . import constants as C
from .backing import aligned_buffer
from .errors import ParentMismatch, ReadOnlyImage
from .image import VhdImage
from .info import uuid_str
from .resize import resize_image

# Metadata is committed (with its write barriers) every this many bytes of copied data; bounded loss on a crash
# and few fdatasyncs.
BATCH_BYTES = 64 * C.MiB


def coalesce_images(child: VhdImage, parent: VhdImage, *, batch_bytes: int = BATCH_BYTES,
                    progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Copy every sector present in ``child`` into ``parent``; return the number of sectors copied.

    Full blocks (batmap bit or all-ones bitmap) are copied with one read and one write; partial blocks by bitmap
    runs, and the parent's bitmap gains exactly the child's bits. ``progress(done_blocks, total_blocks)`` is called
    after each block.
    """
    if not parent.writable:
        raise ReadOnlyImage("coalesce target (parent) is read-only", image=parent.name)
    if child.parent_uuid != parent.uuid:
        raise ParentMismatch(f"{parent.name} (UUID {uuid_str(parent.uuid)}) is not the parent of this image "
                             f"(expects {uuid_str(child.parent_uuid)})", image=child.name)
    if child.virtual_size > parent.virtual_size:
        resize_image(parent, child.virtual_size)
    if child.is_fixed or child.header is None:
        raise ParentMismatch("a fixed image has no parent to coalesce into", image=child.name)
    bs = child.block_size
    spb = child.sectors_per_block
    buf = aligned_buffer(bs)
    mv = memoryview(buf)
    bat = child.bat
    blocks = [blk for blk, e in enumerate(bat) if e != C.BAT_UNUSED and blk * bs < child.virtual_size]
    sectors = 0
    pending = 0
    try:
        for done, blk in enumerate(blocks, 1):
            data_off = child.block_data_offset(blk)
            assert data_off is not None
            voff = blk * bs
            vlen = min(bs, child.virtual_size - voff)
            if child.block_full(blk):
                child.read_raw(mv[:vlen], data_off)
                parent.write_at(voff, mv[:vlen])
                sectors += vlen // C.SECTOR
            else:
                bits = bitmaps.bit_string(child.bitmap(blk), spb)
                for a, z, is_set in bitmaps.runs(bits, 0, vlen // C.SECTOR):
                    if not is_set:
                        continue
                    lo, hi = a * C.SECTOR, z * C.SECTOR
                    child.read_raw(mv[lo:hi], data_off + lo)
                    parent.write_at(voff + lo, mv[lo:hi])
                    sectors += z - a
            pending += vlen
            if pending >= batch_bytes:
                parent.commit()
                pending = 0
            if progress is not None:
                progress(done, len(blocks))
        parent.commit()
    finally:
        # Slices may still be referenced by a traceback; the mmap is freed with its last reference.
        mv.release()
    return sectors
