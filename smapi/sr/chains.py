"""Image-level building blocks of snapshot, clone, compose and reset-on-boot, on top of smapi.vhd.

The central move is the *split*: a leaf's data file is renamed to a new hidden base copy and an empty
differencing image takes the leaf's name over it, so the VDI keeps its identity (name, uuid, URL) and everything
written before the split becomes immutable.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from smapi.sr.engine import Engine
from smapi.sr.faults import fault_point
from smapi.sr.records import SrDocument, VdiRecord
from smapi.vhd import Backing, Chain, bitmaps, info, open_chain, open_image, set_hidden, set_parent
from smapi.vhd import constants as C
from smapi.vhd import snapshot as vhd_snapshot

COPY_CHUNK = 2 * 1024 * 1024


def make_child(engine: Engine, child_volume: str, parent_volume: str) -> None:
    """Create `child_volume`, an empty differencing image over `parent_volume`."""
    sub = engine.substrate
    parent = sub.open_volume(parent_volume)
    try:
        child = sub.create_volume(child_volume)
        try:
            vhd_snapshot(parent, child, parent_name=parent_volume, resolver=sub.resolver())
            child.flush()
        finally:
            child.close()
    finally:
        parent.close()


def hide(engine: Engine, volume: str, hidden: bool = True) -> None:
    backing = engine.substrate.open_volume(volume)
    try:
        already = info(backing, count_blocks=False).hidden
    finally:
        backing.close()
    if already != hidden:
        backing = engine.substrate.open_volume(volume, writable=True)
        try:
            set_hidden(backing, hidden)
        finally:
            backing.close()


def split_leaf(engine: Engine, leaf_volume: str, base_volume: str, op: str) -> None:
    """Rename the leaf's data to `base_volume`, create an empty leaf over it, hide the base."""
    engine.substrate.rename_volume(leaf_volume, base_volume)
    fault_point(f"{op}.renamed")
    make_child(engine, leaf_volume, base_volume)
    fault_point(f"{op}.leaf")
    hide(engine, base_volume)
    fault_point(f"{op}.hidden")


def undo_split(engine: Engine, leaf_volume: str, base_volume: str) -> None:
    """Roll back a split that was not committed: the base's data goes back under the leaf's name."""
    sub = engine.substrate
    if not sub.volume_exists(base_volume):
        return  # the rename never happened: the leaf still holds its own data
    sub.remove_volume(leaf_volume)  # only ever the empty child made by the split
    sub.rename_volume(base_volume, leaf_volume)
    hide(engine, leaf_volume, False)


def commit_split(doc: SrDocument, rec: VdiRecord, base_uuid: str, base_volume: str) -> VdiRecord:
    """Record the split in the SR document: a hidden, read-only base copy between the leaf and its parent."""
    base = VdiRecord(uuid=base_uuid, format="vhd", volume=base_volume, virtual_size=rec.virtual_size,
                     parent=rec.parent, hidden=True, name_label="base copy", content_id=rec.content_id,
                     read_only=True)
    doc.vdis[base_uuid] = base
    rec.parent = base_uuid
    return base


def reparent(engine: Engine, child_volume: str, parent_volume: str) -> None:
    child = engine.substrate.open_volume(child_volume, writable=True)
    try:
        set_parent(child, parent_volume, resolver=engine.substrate.resolver())
    finally:
        child.close()


def parent_name_of(engine: Engine, volume: str) -> Optional[str]:
    backing = engine.substrate.open_volume(volume)
    try:
        return info(backing, count_blocks=False).parent_name
    finally:
        backing.close()


def copy_own_sectors(engine: Engine, source_volume: str, target_volume: str) -> None:
    """Write the sectors `source_volume` itself holds (not its parents') into the chain of `target_volume`."""
    sub = engine.substrate
    src = sub.open_volume(source_volume)
    dst = sub.open_volume(target_volume, writable=True)
    try:
        with open_image(src) as img, open_chain(dst, resolver=sub.resolver(), writable=True) as out:
            if img.header is None:  # a fixed image: all of it is its own data
                copy_all(img.read_raw, img.virtual_size, out)
                return
            bs = img.block_size
            for blk, entry in enumerate(img.bat):
                if entry == C.BAT_UNUSED or blk * bs >= img.virtual_size:
                    continue
                data_off = img.block_data_offset(blk)
                assert data_off is not None
                voff, vlen = blk * bs, min(bs, img.virtual_size - blk * bs)
                buf = bytearray(vlen)
                view = memoryview(buf)
                if not img.is_differencing:
                    # A dynamic image marks whole blocks present when it allocates them, so its bitmap cannot
                    # tell written sectors from the zeros around them: its updates are its non-zero sectors.
                    img.read_raw(view, data_off)
                    for lo, hi in nonzero_runs(view):
                        out.write(voff + lo, view[lo:hi])
                    continue
                if img.block_full(blk):
                    img.read_raw(view, data_off)
                    out.write(voff, view)
                    continue
                bits = bitmaps.bit_string(img.bitmap(blk), img.sectors_per_block)
                for a, z, is_set in bitmaps.runs(bits, 0, vlen // C.SECTOR):
                    if is_set:
                        lo, hi = a * C.SECTOR, z * C.SECTOR
                        img.read_raw(view[lo:hi], data_off + lo)
                        out.write(voff + lo, view[lo:hi])
            out.flush()
    finally:
        src.close()
        dst.close()


_ZERO_SECTOR = bytes(C.SECTOR)


def nonzero_runs(view: memoryview) -> List[Tuple[int, int]]:
    """Byte ranges of consecutive sectors of `view` that are not all zeros."""
    runs: List[Tuple[int, int]] = []
    start = None
    for off in range(0, len(view), C.SECTOR):
        zero = view[off:off + C.SECTOR] == _ZERO_SECTOR
        if not zero and start is None:
            start = off
        elif zero and start is not None:
            runs.append((start, off))
            start = None
    if start is not None:
        runs.append((start, len(view)))
    return runs


def copy_all(read_raw: Callable[[memoryview, int], object], size: int, out: Chain) -> None:
    for off in range(0, size, COPY_CHUNK):
        buf = bytearray(min(COPY_CHUNK, size - off))
        read_raw(memoryview(buf), off)
        if any(buf):
            out.write(off, buf)
    out.flush()


def copy_raw(source: Backing, target: Backing, size: int) -> None:
    """Sparse copy of a raw volume: zero chunks are left as holes."""
    for off in range(0, size, COPY_CHUNK):
        chunk = source.pread(min(COPY_CHUNK, size - off), off)
        if chunk.count(0) != len(chunk):
            target.pwrite(chunk, off)
    target.flush()
