"""Structural verification of an image (and optionally its chain), reporting every problem found.

Unlike opening, which stops at the first fatal problem, :func:`check_image` keeps going and lists each broken
invariant as ``"<field>: <what is wrong>"`` so a person can decide between repair and restore.
"""

import bisect
import time
from dataclasses import dataclass, field
from typing import List, Optional

from . import bitmaps
from . import constants as C
from .chain import build_chain
from .errors import ChainError, VhdError, VhdFormatError
from .geometry import geometry_capacity
from .image import VhdImage
from .parents import read_locators
from .resolver import ParentResolver
from .structs import batmap_checksum, parse_footer

FUTURE_SLACK = 1800  # seconds; blktap's "creation time in future" threshold


@dataclass
class CheckReport:
    """Result of :func:`check`: ``ok`` is True when ``errors`` is empty; warnings never fail a check."""

    name: str
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    allocated_blocks: Optional[int] = None
    chain_depth: Optional[int] = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "allocated_blocks": self.allocated_blocks, "chain_depth": self.chain_depth}


def check_image(img: VhdImage, *, resolver: Optional[ParentResolver] = None, check_parents: bool = True,
                check_bitmaps: bool = True) -> CheckReport:
    rep = CheckReport(img.name)
    try:
        _check_footers(img, rep)
        if img.header is not None:
            _check_header(img, rep)
            _check_bat(img, rep, check_bitmaps)
        if check_parents and img.is_differencing:
            _check_chain(img, resolver, rep)
    except VhdFormatError as e:
        rep.errors.append(f"{e.field}: {e.reason.split(': ', 1)[-1]}")
    except VhdError as e:
        rep.errors.append(e.reason)
    return rep


def _check_footers(img: VhdImage, rep: CheckReport) -> None:
    f = img.footer
    if not img.primary_ok:
        rep.errors.append("footer: primary footer missing or invalid (backup at offset 0 used; run repair)")
    if f.features & C.FEATURES_RESERVED == 0:
        rep.errors.append("footer.features: reserved bit 0x2 not set")
    if f.features & ~(C.FEATURES_RESERVED | C.FEATURES_TEMPORARY):
        rep.errors.append(f"footer.features: unknown feature bits {f.features:#x}")
    if f.version != C.FILE_FORMAT_VERSION:
        rep.errors.append(f"footer.version: {f.version:#010x} (expected 0x00010000)")
    if f.disk_type == C.DISK_FIXED and f.data_offset != C.FIXED_DATA_OFFSET:
        rep.errors.append(f"footer.data_offset: {f.data_offset:#x} on a fixed disk (expected all ones)")
    if f.timestamp > time.time() - C.VHD_EPOCH + FUTURE_SLACK:
        rep.warnings.append("footer.timestamp: creation time in the future")
    if f.saved_state not in (0, 1):
        rep.errors.append(f"footer.saved_state: {f.saved_state} (0 or 1)")
    if f.hidden not in (0, 1):
        rep.errors.append(f"footer.hidden: {f.hidden} (0 or 1)")
    if any(f.reserved):
        rep.errors.append("footer.reserved: non-zero reserved bytes")
    if f.uuid == bytes(16):
        rep.errors.append("footer.uuid: null UUID (repair generates one)")
    if f.creator_app == C.CREATOR_APP and f.creator_version > C.CREATOR_VERSION:
        rep.errors.append(f"footer.creator_version: tap {f.creator_version:#x} is newer than 1.3")
    if geometry_capacity(f.geometry) > max(f.current_size, 0) and (f.geometry >> 16) != 65535:
        rep.warnings.append("footer.geometry: CHS capacity larger than the virtual size")
    if img.header is not None:
        raw = img.backing.pread(C.FOOTER_SIZE, 0)
        try:
            backup = parse_footer(raw, image=img.name, where="backup footer")
            if backup.pack() != f.pack() and img.primary_ok:
                rep.errors.append("backup footer: differs from the primary footer")
        except VhdFormatError as e:
            rep.errors.append(f"{e.field}: {e.reason.split(': ', 1)[-1]}")


def _check_header(img: VhdImage, rep: CheckReport) -> None:
    h = img.header
    assert h is not None
    if img.disk_type == C.DISK_DYNAMIC:
        if h.parent_uuid != bytes(16) or h.parent_timestamp or h.parent_name or \
                any(loc.code for loc in h.locators):
            rep.errors.append("header.parent_uuid: a dynamic disk carries parent fields")
        return
    for i, loc in enumerate(h.locators):
        if loc.code == C.PLAT_NONE:
            if loc.data_space or loc.data_length or loc.data_offset:
                rep.errors.append(f"header.locator[{i}]: unused entry is not zero")
            continue
        if loc.code not in C.KNOWN_PLATFORMS:
            rep.errors.append(f"header.locator[{i}].code: unknown platform {loc.code:#010x}")
        if loc.data_space >= 512 and loc.data_space % 512:
            rep.errors.append(f"header.locator[{i}].data_space: {loc.data_space} is neither sectors nor bytes")
        if loc.data_offset + loc.space_bytes > img.file_size:
            rep.errors.append(f"header.locator[{i}].data_offset: payload runs past the end of the file")
    try:
        read_locators(img)
    except VhdFormatError as e:
        rep.errors.append(f"{e.field}: {e.reason.split(': ', 1)[-1]}")


def _check_bat(img: VhdImage, rep: CheckReport, check_bitmaps: bool) -> None:
    bat = img.bat
    footprint = img.bitmap_size + img.block_size
    limit = img.file_size - (C.FOOTER_SIZE if img.primary_ok else 0)
    blocks = sorted((e * C.SECTOR, blk) for blk, e in enumerate(bat) if e != C.BAT_UNUSED)
    rep.allocated_blocks = len(blocks)
    needed = C.ceil_div(img.virtual_size, img.block_size)
    for start, blk in blocks:
        if blk >= needed:
            rep.errors.append(f"BAT[{blk}]: allocated beyond the virtual size")
        if start + footprint > limit:
            rep.errors.append(f"BAT[{blk}]: block at {start} runs past the end of data ({limit})")
    # Sorted by offset, an overlap can only be with the next block: O(n log n), not blktap's O(n^2).
    for (a, ablk), (b, bblk) in zip(blocks, blocks[1:]):
        if a + footprint > b:
            rep.errors.append(f"BAT[{bblk}]: block overlaps block {ablk}")
    starts = [start for start, _ in blocks]
    for lo, hi, what in img.metadata_regions():
        # Blocks starting in (lo - footprint, hi) overlap the region.
        for k in range(bisect.bisect_right(starts, lo - footprint), bisect.bisect_left(starts, hi)):
            rep.errors.append(f"BAT[{blocks[k][1]}]: block overlaps the {what}")
    if img.batmap_header is not None:
        if not img.batmap_valid:
            rep.errors.append(f"batmap.checksum: {img.batmap_problem or 'batmap invalid'}")
        elif img.batmap is not None:
            bm = img.batmap
            for blk in range(min(len(bat), len(bm) * 8)):
                if bm[blk >> 3] & (0x80 >> (blk & 7)):
                    if bat[blk] == C.BAT_UNUSED:
                        rep.errors.append(f"batmap[{blk}]: marks an unallocated block full")
                    elif check_bitmaps and not bitmaps.all_set(img.bitmap(blk), img.sectors_per_block):
                        rep.errors.append(f"batmap[{blk}]: marks a block full whose bitmap is not")
            want = batmap_checksum(bm, img.virtual_size, img.block_size)
            if want != img.batmap_header.checksum:
                rep.errors.append("batmap.checksum: mismatch")


def _check_chain(img: VhdImage, resolver: Optional[ParentResolver], rep: CheckReport) -> None:
    try:
        chain = build_chain(img, resolver)
    except ChainError as e:
        rep.errors.append(f"parent: {e.reason}")
        return
    except VhdFormatError as e:
        rep.errors.append(f"parent {e.image}: {e.field}: {e.reason.split(': ', 1)[-1]}")
        return
    try:
        rep.chain_depth = chain.depth
        parent = chain.images[1]
        assert img.header is not None
        mtime = parent.backing.mtime()
        if mtime is not None and img.header.parent_timestamp != max(0, int(mtime) - C.VHD_EPOCH):
            rep.warnings.append("header.parent_timestamp: differs from the parent's mtime (tapdisk ignores it)")
        if parent.virtual_size > img.virtual_size:
            rep.warnings.append("parent: larger than the child")
    finally:
        for p in chain.images[1:]:
            p.close()
