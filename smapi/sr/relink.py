"""Landing an upload scratch without copying it: the scratch takes the leaf's place (`smapi.sr.scratch`).

A scratch of a VHD VDI is a real differencing child of the VDI's leaf L (same block size, parent uuid = L's,
parent locator = `base_volume`, the name L gets if it is relinked). At commit it lands in one of two ways, both
O(metadata) -- a few renames and header writes -- instead of copying the written bytes:

* **replace**: the scratch S holds every sector L holds itself (a whole-disk PUT) and L has a parent P. Then S
  over P reads exactly like S over L over P: S is pointed at P and renamed over L's volume. L's data goes with
  the rename; the SR document does not change (same volume, same parent). When L has no parent (a dynamic
  image) and every block S allocated is complete, S reads the same as a dynamic image: its header loses the
  parent and its footer says "dynamic" (`detach_parent`) before the rename.
* **relink**: otherwise, as a snapshot split does: L is renamed to `base_volume` and hidden, S is renamed to
  L's volume, and the document records the base (labelled `UPLOAD_BASE`) between the VDI and its old parent.
  The collector's leaf-coalesce merges it later, once the VDI is idle.

Steps (the upload's journal entry; `SMAPI_FAULT=upload.<step>` kills the process after each):

    relink:   decided (entry step "relink") -> renamed (L -> base) -> hidden -> swapped (S -> L's volume) ->
              recorded (SR document) -> entry removed
    replace:  decided (entry step "replace") -> reparented (S's parent := P, or none) -> swapped (S over L) ->
              entry removed

From "decided" on, `finish` rolls forward and is idempotent: every step is skipped when the state shows it done
(the base volume exists, the scratch volume is gone, the base is in the document). It runs under the SR lock by
the uploader, or by recovery once the uploader is gone (`scratch.replay`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from smapi.sr.chains import commit_split, hide, reparent
from smapi.sr.engine import Engine
from smapi.sr.faults import fault_point
from smapi.sr.journal import JournalEntry
from smapi.sr.records import SrDocument
from smapi.vhd import MAX_CHAIN_DEPTH, VhdImage, bitmaps
from smapi.vhd import constants as C
from smapi.vhd.structs import Locator

#: name_label of a base copy made by an upload (how `decide` counts the uploads stacked over a VDI)
UPLOAD_BASE = "upload base"
#: at most this many upload bases right above a leaf: a later (partial) upload is copied instead, so repeated
#: uploads into a VDI kept busy (no leaf-coalesce can run) never push its chain towards the depth limit
MAX_UPLOAD_BASES = 2


def decide(doc: SrDocument, vdi: str, scratch: VhdImage, leaf: VhdImage) -> Optional[Dict[str, Any]]:
    """How the scratch lands in place ({"step": "replace"|"relink", ...}), or None when it must be copied."""
    rec = doc.vdis.get(vdi)
    if rec is None or rec.format != "vhd" or not rec.persistent:
        # A reset-on-boot VDI resets to its parent: relinking would make the old leaf part of what it resets to.
        return None
    if rec.cbt_enabled:
        return None  # copied into the leaf, where changed-block tracking sees the writes (smapi.sr.cbtlog)
    parent = doc.vdis.get(rec.parent or "")
    if parent is not None and leaf.is_differencing and covers(scratch, leaf):
        return {"step": "replace", "parent_volume": parent.volume}
    if rec.parent is None and not leaf.is_differencing and covers(scratch, leaf) and complete_blocks(scratch):
        return {"step": "replace", "parent_volume": None}
    if scratch.parent_uuid != leaf.uuid:
        return None  # made over an earlier leaf (another upload landed in place meanwhile): copy it
    if doc.depth(vdi) + 1 > MAX_CHAIN_DEPTH or upload_bases(doc, vdi) >= MAX_UPLOAD_BASES:
        return None
    return {"step": "relink"}


def upload_bases(doc: SrDocument, vdi: str) -> int:
    n = 0
    for uuid in doc.ancestors(vdi):
        rec = doc.vdis[uuid]
        if not (rec.hidden and rec.name_label == UPLOAD_BASE):
            break
        n += 1
    return n


def covers(top: VhdImage, below: VhdImage) -> bool:
    """True when every sector `below` holds itself is also held by `top` (metadata only: BATs and bitmaps)."""
    if below.header is None or top.header is None or top.block_size != below.block_size:
        return False
    spb, bs, size = below.sectors_per_block, below.block_size, below.virtual_size
    for blk, entry in enumerate(below.bat):
        if entry == C.BAT_UNUSED or blk * bs >= size:
            continue
        if top.block_data_offset(blk) is None:
            return False
        if top.block_full(blk):
            continue
        nbits = min(spb, -(-(size - blk * bs) // C.SECTOR))
        mask = (1 << nbits) - 1
        want = int.from_bytes(below.bitmap(blk)[: -(-nbits // 8)], "big") >> (-nbits % 8) & mask
        have = int.from_bytes(top.bitmap(blk)[: -(-nbits // 8)], "big") >> (-nbits % 8) & mask
        if want & ~have:
            return False
    return True


def complete_blocks(img: VhdImage) -> bool:
    """True when every block allocated in `img` has all its sectors (up to the virtual size) marked: a dynamic
    image with the same blocks then reads exactly the same, whatever its reader does with bitmaps."""
    bs, spb = img.block_size, img.sectors_per_block
    for blk, entry in enumerate(img.bat):
        if entry == C.BAT_UNUSED or blk * bs >= img.virtual_size or img.block_full(blk):
            continue
        if not bitmaps.all_set(img.bitmap(blk), min(spb, -(-(img.virtual_size - blk * bs) // C.SECTOR))):
            return False
    return True


def detach_parent(engine: Engine, volume: str) -> None:
    """Make differencing image `volume` a dynamic one (idempotent): header parent fields cleared, then the footer's
    disk type. Only for images whose allocated blocks are complete (`complete_blocks`)."""
    img = VhdImage.open(engine.substrate.open_volume(volume, writable=True), name=volume, writable=True)
    try:
        if img.is_differencing:
            assert img.header is not None
            img.update_header(img.header.with_(parent_uuid=bytes(16), parent_timestamp=0, parent_name="",
                                               locators=[Locator()] * C.LOCATOR_COUNT))
            img.update_footer(disk_type=C.DISK_DYNAMIC)
            img.backing.flush()
    finally:
        img.close()


def marked_bytes(img: VhdImage) -> int:
    """Bytes whose sectors are marked in `img` (metadata only)."""
    total = 0
    bs, spb = img.block_size, img.sectors_per_block
    for blk, entry in enumerate(img.bat):
        if entry == C.BAT_UNUSED or blk * bs >= img.virtual_size:
            continue
        if img.block_full(blk):
            total += min(bs, img.virtual_size - blk * bs)
            continue
        nbits = min(spb, -(-(img.virtual_size - blk * bs) // C.SECTOR))
        bits = int.from_bytes(img.bitmap(blk)[: -(-nbits // 8)], "big") >> (-nbits % 8)
        total += bin(bits).count("1") * C.SECTOR
    return total


def finish(engine: Engine, entry: JournalEntry) -> None:
    """Roll a decided landing forward and end the entry (the caller holds the SR lock and the VDI)."""
    d = entry.data
    sub = engine.substrate
    if d["step"] == "replace":
        if sub.volume_exists(d["volume"]):
            if d["parent_volume"]:
                reparent(engine, d["volume"], d["parent_volume"])
            else:
                detach_parent(engine, d["volume"])
            fault_point("upload.reparented")
            sub.rename_volume(d["volume"], d["leaf_volume"])
            fault_point("upload.swapped")
        engine.journal.end(entry)
        return
    doc = engine.load()
    if d["base"] not in doc.vdis:
        if not sub.volume_exists(d["base_volume"]):
            sub.rename_volume(d["leaf_volume"], d["base_volume"])
            fault_point("upload.renamed")
        hide(engine, d["base_volume"])
        fault_point("upload.hidden")
        if sub.volume_exists(d["volume"]):
            sub.rename_volume(d["volume"], d["leaf_volume"])
            fault_point("upload.swapped")
        base = commit_split(doc, doc.vdis[d["vdi"]], d["base"], d["base_volume"])
        base.name_label = UPLOAD_BASE
        engine.save(doc)
        fault_point("upload.recorded")
    engine.journal.end(entry)
