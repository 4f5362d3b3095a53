"""Trim where VHD allows it: give back the file space of data the leaf holds, without touching any metadata.

NBD leaves a trimmed range's contents unspecified until rewritten. The native datapath (``vhdtrim.h``) applies the
same rule, and the tests compare both byte for byte:

- only the leaf, and only when its backing can punch holes (a regular file: file and NFS SRs); an LV reached through
  a segment map is left alone, a discard on a shared PV is not ours to issue;
- a dynamic or differencing leaf: inside blocks the leaf's BAT maps (lying within the file and overlapping no
  metadata), the whole :data:`TRIM_UNIT` units of the *file* the range covers in the block's data area; unallocated
  blocks are untouched (their sectors come from the parent and must keep doing so);
- a fixed leaf: the whole units of its data the range covers (never the footer).

A released unit reads as zeros: sectors whose bitmap bit is set read zeros, never parent data; sectors whose bit is
clear still read the parent (their bytes in the leaf are never read). Bitmaps, BAT, batmap and footer do not change,
so there is no crash ordering to keep: after a crash a unit holds its old bytes or zeros.
"""

from typing import List, Tuple

from . import constants as C
from .chain import Chain
from .errors import CorruptImage, OutOfRange, ReadOnlyImage
from .image import VhdImage

#: what is released at a time: whole 4 KiB units of the file, so a partial file-system block is never zeroed
TRIM_UNIT = 4096


def whole_units(lo: int, hi: int) -> Tuple[int, int]:
    """The largest ``[a, b)`` inside ``[lo, hi)`` made of whole units (``a >= b``: none)."""
    return C.ceil_div(lo, TRIM_UNIT) * TRIM_UNIT, hi // TRIM_UNIT * TRIM_UNIT


def trim_ranges(img: VhdImage, offset: int, length: int) -> List[Tuple[int, int]]:
    """File ranges ``(start, length)`` of ``img`` that a trim of virtual ``[offset, offset + length)`` releases."""
    end = min(offset + length, img.virtual_size)
    spans: List[Tuple[int, int]] = []
    if img.is_fixed:
        spans.append((offset, end))
    else:
        regions = img.metadata_regions()
        bs = img.block_size
        pos = offset
        while pos < end:
            blk = pos // bs
            nxt = min(end, (blk + 1) * bs)
            try:
                data = img.block_data_offset(blk)
            except CorruptImage:
                data = None  # past the end of the file: left alone
            if data is not None and not any(data - img.bitmap_size < hi and data + bs > lo for lo, hi, _ in regions):
                spans.append((data + pos % bs, data + pos % bs + nxt - pos))
            pos = nxt
    out = []
    for lo, hi in spans:
        a, b = whole_units(lo, hi)
        if a < b:
            out.append((a, b - a))
    return out


def trim(chain: Chain, offset: int, length: int) -> int:
    """Release what VHD allows in ``[offset, offset + length)`` of the chain's leaf; returns the bytes released (0
    when the leaf's backing cannot punch holes). The leaf's metadata is not touched; nothing to commit."""
    leaf = chain.leaf
    if not leaf.writable:
        raise ReadOnlyImage("chain opened read-only", image=leaf.name)
    if offset < 0 or length < 0 or offset + length > chain.size:
        raise OutOfRange(f"trim {length}@{offset} outside the virtual disk (size {chain.size})", image=leaf.name)
    if not leaf.backing.can_punch():
        return 0
    done = 0
    for start, n in trim_ranges(leaf, offset, length):
        if not leaf.backing.punch_hole(start, n):
            break
        done += n
    return done
