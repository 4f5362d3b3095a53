"""Changed-block tracking verbs: enable, disable, list changed blocks, destroy a snapshot's data, compare.

The log and how the engine keeps it are in `smapi.sr.cbtlog`. Raw VDIs are refused (VDIType): a raw image has
no layers, so there is nothing to read the writes from without a datapath hook. Snapshots are refused as well,
as sm does: a snapshot of a tracked VDI is tracked by being a point of that VDI's log.

data_destroy replaces a snapshot's image with an empty one of the same size and forgets its parent, so the base
copy under it can be coalesced; the record stays (type `cbt_metadata`) and so does its point in the log.
Journal op `data-destroy` (`SMAPI_FAULT=data-destroy.<step>`): begin -> made (an empty image beside the
snapshot's) -> step "swap" -> swapped (renamed over the snapshot's volume) -> committed (record updated). Replay:
before "swap" the new image is removed; from "swap" on the swap and the commit are finished.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, List, Optional, Tuple

from smapi.interface.errors import Backend_error
from smapi.sr import cbtlog
from smapi.sr.cbtlog import GRANULARITY, CbtLog, Point
from smapi.sr.engine import Engine, new_uuid
from smapi.sr.errors import mapped_errors
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.records import SrDocument, VdiRecord
from smapi.vhd.create import create_sparse_on

#: the VDI type xapi gives a snapshot whose data was destroyed
CBT_METADATA = "cbt_metadata"


def _changed_blocks_error(why: str) -> Backend_error:
    return Backend_error.classic("CBTChangedBlocksError", why)


def enable(engine: Engine, vdi: str) -> None:
    with engine.locked(vdi, what="VDI.enable_cbt"):
        doc = engine.load()
        rec = engine.visible(doc, vdi)
        if rec.format != "vhd":
            raise Backend_error.classic("VDIType", f"VDI {vdi} is raw: changed-block tracking reads the writes "
                                                   f"from VHD layers; only VHD VDIs can be tracked")
        if rec.is_a_snapshot or rec.ty == CBT_METADATA:
            raise Backend_error.classic("VDIType", f"VDI {vdi} is a snapshot: enable tracking on the VDI it is "
                                                   f"a snapshot of (its snapshots are tracked with it)")
        if rec.cbt_enabled:
            return
        log = cbtlog.load(engine, vdi) or CbtLog(vdi)
        # Earlier points stay comparable among themselves; nothing may span the time tracking was off.
        if log.points and log.points[-1].snapshot is not None:
            log.points.append(Point(None, rec.virtual_size))
        log.pending = bytearray()
        with mapped_errors(f"VDI.enable_cbt {vdi}"):
            cbtlog.store(engine, log)  # the log first: a flag with no log would track nothing
            rec.cbt_enabled = True
            engine.save(doc)


def disable(engine: Engine, vdi: str) -> None:
    with engine.locked(vdi, what="VDI.disable_cbt"):
        doc = engine.load()
        rec = engine.visible(doc, vdi)
        if not rec.cbt_enabled:
            return
        rec.cbt_enabled = False
        with mapped_errors(f"VDI.disable_cbt {vdi}"):
            engine.save(doc)
            log = cbtlog.load(engine, vdi)
            if log is not None:
                log.pending = bytearray()
                cbtlog.store(engine, log)


def log_owner(engine: Engine, vdi: str) -> Optional[str]:
    """The VDI whose CBT log a VDI belongs to (itself, or the VDI a snapshot was taken of)."""
    with engine.locked(what="VDI.destroy"):
        rec = engine.load().vdis.get(vdi)
    if rec is None or not rec.cbt_enabled and not cbtlog.load(engine, vdi):
        return None
    return rec.snapshot_of if rec.is_a_snapshot else rec.uuid


def forget_if_unused(engine: Engine, owner: Optional[str]) -> None:
    """Remove the log of `owner` once neither it nor any tracked snapshot of it exists (after a destroy)."""
    if not owner:
        return
    with engine.locked(what="VDI.destroy"):
        doc = engine.load()
        if owner in doc.vdis or any(r.snapshot_of == owner and r.cbt_enabled for r in doc.vdis.values()):
            return
        cbtlog.remove(engine, owner)


def _find_log(engine: Engine, snapshot: VdiRecord, to: VdiRecord) -> Tuple[CbtLog, int]:
    # A snapshot's point is in the log of the VDI it is a snapshot of (the engine always records snapshot_of).
    for owner in dict.fromkeys((snapshot.snapshot_of, to.uuid, to.snapshot_of)):
        log = cbtlog.load(engine, owner) if owner else None
        if log is not None and log.index(snapshot.uuid) is not None:
            return log, log.index(snapshot.uuid) or 0
    raise _changed_blocks_error(f"VDI {snapshot.uuid} has no changed-block tracking record: it is not a snapshot "
                                f"taken while tracking was on")


def changed_bitmap(engine: Engine, vdi_from: str, vdi_to: str) -> Tuple[bytes, int]:
    """(bitmap of the 64 KiB blocks changed from snapshot `vdi_from` to `vdi_to`, size of `vdi_to` in bytes).
    `vdi_to` is a later snapshot of the same VDI or that VDI itself (its current content)."""
    with engine.locked(vdi_to, what="VDI.list_changed_blocks"):
        doc = engine.load()
        rec_from, rec_to = engine.visible(doc, vdi_from), engine.visible(doc, vdi_to)
        if vdi_from == vdi_to:
            raise _changed_blocks_error(f"source and target are the same VDI ({vdi_from})")
        log, first = _find_log(engine, rec_from, rec_to)
        if vdi_to == log.vdi:
            if not rec_to.cbt_enabled:
                raise _changed_blocks_error(f"changed-block tracking is off on VDI {vdi_to}")
            last, live = len(log.points), True
        else:
            found = log.index(vdi_to)
            if found is None or found <= first:
                raise _changed_blocks_error(f"VDI {vdi_to} is not a later snapshot of VDI {log.vdi} than "
                                            f"{vdi_from}")
            last, live = found + 1, False
        spanned = log.points[first + 1:last]
        if any(p.snapshot is None for p in spanned):
            raise _changed_blocks_error(f"changed-block tracking of VDI {log.vdi} was off between {vdi_from} and "
                                        f"{vdi_to}")
        out = bytearray()
        for p in spanned:
            cbtlog.union(out, p.blocks)
        if live:
            cbtlog.union(out, log.pending)
            with mapped_errors(f"reading the blocks of VDI {vdi_to}"):
                cbtlog.union(out, cbtlog.volume_blocks(engine, rec_to))
        return bytes(out), rec_to.virtual_size


def list_changed_blocks(engine: Engine, vdi_from: str, vdi_to: str, offset: int = 0,
                        length: int = -1) -> Dict[str, Any]:
    """SMAPIv3's `changed_blocks` {granularity, bitmap (base64)} for [offset, offset+length) (length < 0: to
    the end), the extent widened to whole blocks; bit 0 is the extent's first block."""
    if offset < 0:
        raise Backend_error.classic("InvalidArg", f"offset {offset} is negative")
    bitmap, size = changed_bitmap(engine, vdi_from, vdi_to)
    end = cbtlog.blocks_for(size if length < 0 else min(size, offset + length))
    first = min(offset // GRANULARITY, end)
    return {"granularity": GRANULARITY, "bitmap": base64.b64encode(cbtlog.extent(bitmap, first, end)).decode()}


def whole_bitmap(engine: Engine, vdi_from: str, vdi_to: str) -> str:
    """The SMAPIv2 / classic result: the base64 bitmap of the whole disk."""
    return str(list_changed_blocks(engine, vdi_from, vdi_to)["bitmap"])


# ------------------------------------------------------------------------------------------- data_destroy
def data_destroy(engine: Engine, vdi: str) -> None:
    with engine.locked(vdi, what="VDI.data_destroy"):
        doc = engine.load()
        rec = engine.visible(doc, vdi)
        if not rec.is_a_snapshot:
            raise Backend_error.classic("VDIType", f"VDI {vdi} is not a snapshot: only a snapshot's data can be "
                                                   f"destroyed while its changed-block metadata is kept")
        if rec.ty == CBT_METADATA:
            return
        busy = engine.run.dp_states(engine.sr, vdi)
        if busy:
            raise Backend_error.classic("VDIInUse", f"VDI {vdi} is attached on this host ({busy}); detach it first")
        if rec.format != "vhd":
            raise Backend_error.classic("VDIType", f"VDI {vdi} is raw; only VHD snapshots keep CBT metadata")
        scratch = engine.volume_of(new_uuid(), "vhd")
        entry = engine.journal.begin("data-destroy", vdi=vdi, volume=rec.volume, scratch=scratch, step="make")
        fault_point("data-destroy.begin")
        with mapped_errors(f"VDI.data_destroy {vdi}"):
            backing = engine.substrate.create_volume(scratch)
            try:
                create_sparse_on(backing, rec.virtual_size, round_to_block=False)
                backing.flush()
            finally:
                backing.close()
            fault_point("data-destroy.made")
            engine.journal.update(entry, step="swap")
            _finish(engine, entry)
    engine.after_change()


def refuse_without_data(engine: Engine, vdi: str, what: str) -> None:
    """A snapshot whose data was destroyed would read as zeros: refuse to serve or copy it (VDIType)."""
    rec = engine.load().vdis.get(vdi)
    if rec is not None and rec.ty == CBT_METADATA and rec.is_a_snapshot and rec.parent is None:
        raise Backend_error.classic("VDIType", f"{what}: the data of VDI {vdi} was destroyed (data_destroy); it "
                                               f"keeps only changed-block tracking metadata")


def _finish(engine: Engine, entry: JournalEntry) -> None:
    """Swap the empty image in and commit; idempotent (the caller holds the SR lock)."""
    d = entry.data
    if engine.substrate.volume_exists(d["scratch"]):
        engine.substrate.rename_volume(d["scratch"], d["volume"])
    fault_point("data-destroy.swapped")
    doc = engine.load()
    rec = doc.vdis.get(d["vdi"])
    if rec is not None:
        rec.parent, rec.ty = None, CBT_METADATA
        engine.save(doc)
    fault_point("data-destroy.committed")
    engine.journal.end(entry)


@REPLAYERS.register("data-destroy")
def _replay_data_destroy(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Before "swap": the new image goes, the snapshot is as it was; from "swap": finished."""
    if entry.data.get("step") == "swap":
        _finish(engine, entry)
    else:
        engine.substrate.remove_volume(entry.data["scratch"])
        engine.journal.end(entry)
    return True


# ------------------------------------------------------------------------------------------------ compare
def compare(engine: Engine, vdi: str, vdi2: str) -> str:
    """The base64 bitmap of the 64 KiB blocks that may differ between two VDIs: the layers below their common
    ancestor are shared, so only the blocks the layers above it hold can differ. Unrelated VDIs (or `vdi2`
    missing): the blocks `vdi` holds data in. Raw VDIs: every block (nothing tells which are in use)."""
    with engine.locked(what="VDI.compare"):
        doc = engine.load()
        r1 = engine.visible(doc, vdi)
        layers = _differing_layers(doc, r1, doc.vdis.get(vdi2))
        out = bytearray()
        with mapped_errors(f"comparing VDIs {vdi} and {vdi2}"):
            if layers is None:
                cbtlog.set_bits(out, 0, cbtlog.blocks_for(r1.virtual_size))
            for rec in layers or ():
                cbtlog.union(out, cbtlog.volume_blocks(engine, rec))
        nblocks = cbtlog.blocks_for(r1.virtual_size)
        return base64.b64encode(cbtlog.extent(out, 0, nblocks)).decode()


def _differing_layers(doc: SrDocument, r1: VdiRecord, r2: Optional[VdiRecord]) -> Optional[List[VdiRecord]]:
    """The images above the common ancestor of r1 and r2 (all of r1's chain when unrelated); None for raw."""
    if r1.format != "vhd" or (r2 is not None and r2.format != "vhd"):
        return None
    chain1 = [r1.uuid] + doc.ancestors(r1.uuid)
    chain2 = ([r2.uuid] + doc.ancestors(r2.uuid)) if r2 is not None else []
    shared = set(chain1) & set(chain2)
    if not shared:
        chain2 = []
    return [doc.vdis[u] for u in dict.fromkeys(chain1 + chain2) if u not in shared and u in doc.vdis]
