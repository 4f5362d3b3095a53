"""The changed-block-tracking (CBT) log of a VDI, kept by the SR engine without any hook in the datapath.

Why no datapath hook: the sector bitmaps of a differencing VHD say exactly which sectors were written into that
layer since it was created. A VDI's leaf layer is created by the split that freezes the previous leaf (snapshot,
clone, reset-on-boot, compose), so at any moment the blocks written since the last freeze are the leaf's own
blocks. The engine records them in the log whenever a freeze is about to take them out of the leaf. (A reset of a
non-persistent leaf brings back the content of its last split, whose changes are already recorded.)

One metadata document `cbt/<vdi>` per tracked VDI (written atomically by the substrate, like the journal):

    points   one per snapshot, in order: {"snapshot": uuid, "size": bytes, "blocks": bitmap}; `blocks` are the
             64 KiB blocks written between the previous point and this snapshot. A point named null is a break:
             tracking was off between its neighbours, so no interval may span it.
    pending  blocks written since the last point that already left the leaf (frozen by a clone, for example).

Changes between snapshots A and B = union of the points after A up to B; between A and the VDI now = those,
`pending` and the leaf's own blocks. Crash safety: a freeze writes the log before the SR document commit (the
point of no return), so a rolled-back freeze leaves at most a point no snapshot carries or blocks recorded twice,
which are unions of blocks really written in the interval: the log is always a superset of the truth and, for the
intervals between real snapshots, still exact.

Bitmaps are stored zlib-compressed and base64-encoded; bit i is block i, most significant bit first in each byte
(the order of the bitmap xapi's VDI.list_changed_blocks returns: sm reverses tapdisk's bytes before encoding).
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from smapi.sr.engine import Engine
from smapi.sr.records import VdiRecord
from smapi.vhd import VhdImage
from smapi.vhd import constants as C

#: bytes per bit of every CBT bitmap (xapi's and sm's CBT_BLOCK_SIZE)
GRANULARITY = 64 * 1024
_SECTORS_PER_BIT = GRANULARITY // C.SECTOR
#: a bitmap, read-only or being built
Bits = Union[bytes, bytearray]
#: document key prefix; a directory substrate keeps the logs in `<SR>/.cbt/`, removed with the SR
LOG_PREFIX = "cbt/"


def blocks_for(size: int) -> int:
    """Bits a bitmap of a `size`-byte disk has."""
    return -(-size // GRANULARITY)


def set_bits(bitmap: bytearray, first: int, end: int) -> None:
    """Set bits [first, end), growing the bitmap as needed."""
    if end <= first:
        return
    need = -(-end // 8)
    if len(bitmap) < need:
        bitmap.extend(bytes(need - len(bitmap)))
    for i in range(first, end):
        bitmap[i >> 3] |= 0x80 >> (i & 7)


def union(into: bytearray, other: Bits) -> None:
    if len(into) < len(other):
        into.extend(bytes(len(other) - len(into)))
    for i, b in enumerate(other):
        if b:
            into[i] |= b


def block_indices(bitmap: Bits) -> List[int]:
    """The set bits of a bitmap (for tests and logs)."""
    return [i * 8 + j for i, b in enumerate(bitmap) if b for j in range(8) if b & (0x80 >> j)]


def extent(bitmap: Bits, first: int, end: int) -> bytes:
    """Bits [first, end) of `bitmap` as a new bitmap starting at bit 0 (missing bits are clear)."""
    nbytes = -(-max(0, end - first) // 8)
    if first % 8 == 0:  # whole bytes (every call but an unaligned v3 extent): no per-bit loop
        out = bytearray(bitmap[first // 8:first // 8 + nbytes].ljust(nbytes, b"\0"))
        if (end - first) % 8 and out:
            out[-1] &= (0xFF << (8 - (end - first) % 8)) & 0xFF
        return bytes(out)
    out = bytearray(nbytes)
    for i in range(first, end):
        if i >> 3 < len(bitmap) and bitmap[i >> 3] & (0x80 >> (i & 7)):
            j = i - first
            out[j >> 3] |= 0x80 >> (j & 7)
    return bytes(out)


def _encode(bitmap: Bits) -> str:
    return base64.b64encode(zlib.compress(bytes(bitmap))).decode()


def _decode(text: str) -> bytearray:
    return bytearray(zlib.decompress(base64.b64decode(text))) if text else bytearray()


@dataclass
class Point:
    snapshot: Optional[str]  # None: a break (tracking was off)
    size: int
    blocks: bytearray = field(default_factory=bytearray)


@dataclass
class CbtLog:
    vdi: str
    pending: bytearray = field(default_factory=bytearray)
    points: List[Point] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"vdi": self.vdi, "pending": _encode(self.pending),
                "points": [{"snapshot": p.snapshot, "size": p.size, "blocks": _encode(p.blocks)}
                           for p in self.points]}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> CbtLog:
        return cls(d["vdi"], _decode(d.get("pending", "")),
                   [Point(p.get("snapshot"), int(p.get("size", 0)), _decode(p.get("blocks", "")))
                    for p in d.get("points", [])])

    def index(self, snapshot: str) -> Optional[int]:
        for i, p in enumerate(self.points):
            if p.snapshot == snapshot:
                return i
        return None


def log_key(vdi: str) -> str:
    return LOG_PREFIX + vdi


def load(engine: Engine, vdi: str) -> Optional[CbtLog]:
    raw = engine.substrate.load_document(log_key(vdi))
    return CbtLog.from_dict(raw) if raw is not None else None


def store(engine: Engine, log: CbtLog) -> None:
    engine.substrate.store_document(log_key(log.vdi), log.to_dict())


def remove(engine: Engine, vdi: str) -> None:
    engine.substrate.remove_document(log_key(vdi))


# ---------------------------------------------------------------------------------------- blocks of a layer
def image_blocks(img: VhdImage) -> bytearray:
    """The 64 KiB blocks holding sectors this image itself holds (a differencing layer: exactly the sectors
    written into it; a dynamic image marks whole VHD blocks; a fixed image: everything)."""
    size = img.virtual_size
    out = bytearray(-(-blocks_for(size) // 8))
    if img.header is None:
        set_bits(out, 0, blocks_for(size))
        return out
    bs = img.block_size
    for blk, entry in enumerate(img.bat):
        if entry == C.BAT_UNUSED or blk * bs >= size:
            continue
        start, end = blk * bs, min(size, (blk + 1) * bs)
        if img.block_full(blk):
            set_bits(out, start // GRANULARITY, blocks_for(end))
            continue
        _mark_bitmap(out, img.bitmap(blk), start, end)
    return out


def _mark_bitmap(out: bytearray, sector_bitmap: Bits, start: int, end: int) -> None:
    """Mark the 64 KiB blocks of [start, end) that have a set sector bit (sector 0 = MSB of byte 0)."""
    nsectors = -(-(end - start) // C.SECTOR)
    if start % GRANULARITY == 0:
        # Aligned (every VHD block size that is a multiple of 64 KiB): 16 bitmap bytes per 64 KiB block.
        step = _SECTORS_PER_BIT // 8
        nbytes = -(-nsectors // 8)
        for i in range(0, nbytes, step):
            if any(sector_bitmap[i:min(i + step, nbytes)]):
                bit = start // GRANULARITY + i // step
                out[bit >> 3] |= 0x80 >> (bit & 7)
        return
    for s in range(nsectors):
        if sector_bitmap[s >> 3] & (0x80 >> (s & 7)):
            bit = (start + s * C.SECTOR) // GRANULARITY
            set_bits(out, bit, bit + 1)


def volume_blocks(engine: Engine, rec: VdiRecord) -> bytearray:
    """The blocks the image of `rec` holds itself (its own layer only, not its parents')."""
    img = VhdImage.open(engine.substrate.open_volume(rec.volume), name=rec.volume, writable=False)
    try:
        return image_blocks(img)
    finally:
        img.close()


# ------------------------------------------------------------------------------ hooks of the engine's verbs
def before_freeze(engine: Engine, rec: VdiRecord, snapshot: Optional[str] = None) -> None:
    """Record the leaf's own blocks before a split freezes them into a base copy.

    The caller holds the SR lock and the VDI (servers paused), and calls this before the SR document commit.
    With `snapshot`, the recorded blocks and the pending ones become that snapshot's point."""
    if not rec.cbt_enabled or rec.format != "vhd":
        return
    log = load(engine, rec.uuid) or CbtLog(rec.uuid)
    union(log.pending, volume_blocks(engine, rec))
    if snapshot is not None:
        log.points.append(Point(snapshot, rec.virtual_size, log.pending))
        log.pending = bytearray()
    store(engine, log)
