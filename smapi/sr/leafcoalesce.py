"""Leaf-coalesce: fold a hidden base copy P into its only child when that child is a visible leaf VDI L.

Snapshot-then-destroy-the-snapshot leaves L over a hidden P that serves L alone; the hidden-image coalesce of
`gc` never touches it, so without this every such VDI keeps a chain of two and a growing base copy. Here the
chain P -> L collapses into one image that keeps L's identity: the same uuid, the same volume name (which is
what attach hands out and what the VDI's URL names) and the same record, reading exactly as before.

Steps (journal entry `leaf-coalesce`; `SMAPI_FAULT=leaf-coalesce.<step>` kills the process after each):

    begin      L's VDI lock held exclusively (without waiting: a busy L is postponed); entry written, step "copy"
    copied     L's sectors copied into P (`smapi.vhd.coalesce`); L itself is untouched
               -- from here to the end the SR lock is held --
    decided    the entry says step "rename": the point of no return
    renamed    P's volume renamed over L's volume name (L's old image is gone)
    unhidden   the merged image's hidden flag cleared
    committed  SR document: P's record gone, L's parent is what P's parent was

Replay (`replay`): an entry at step "copy" is forgotten (rolled back), but only by whoever holds the `gc` lock,
since a live collector may still be copying. Rolling back is harmless: P then holds copies of sectors that L
covers, and P is only ever read through L. An entry at step "rename" is rolled forward by anyone holding the SR
lock: the collector holds it from writing "rename" until the entry is gone, so such an entry is always a dead
one, and it must be finished before anyone opens L again (L's old image may already be gone).

Who could write L during the copy: data handles (`open_vdi`) and data-moving verbs take L's VDI lock, which we
hold. A datapath opens the volume path it got from VDI.attach and does not take that lock, so leaves with any
datapath state on this host are not candidates, and a VDI.attach during the copy marks the entry cancelled
(`cancel_for_attach`, under the SR lock), which the commit checks under the SR lock before deciding.
Datapath states are host-local: on an SR shared by several hosts a leaf attached on another host is not seen.

Not candidates:
* raw leaves (no parent) and raw parents;
* leaves with changed-block tracking on: their own layer is what `smapi.sr.cbtlog` reads the writes since the
  last snapshot from (merging the parent in would mix older data into it);
* non-persistent (reset-on-boot) leaves, as in classic sm: `epoch_begin` drops L's blocks to show P again,
  so P must stay the content of the moment the VDI was made non-persistent; merging L into it would make the
  next reset keep what the last boot wrote;
* leaves smaller than their parent (a compose can put a small VDI over a bigger base): the merged image would
  report the parent's size and read bigger than the VDI;
* leaves with datapath state; leaves the collector finds busy are retried on its next run.

Space: P may grow by up to L's allocated size. When the SR cannot offer that (free space, or the SR's quota),
the leaf is skipped with a logged reason, and so is a copy that runs out of space half-way.
"""

from __future__ import annotations

import errno
import logging
from typing import Optional, Set, Tuple

from smapi.sr.chains import hide
from smapi.sr.engine import Engine
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.records import SrDocument
from smapi.vhd import DEFAULT_BLOCK_SIZE
from smapi.vhd import coalesce as vhd_coalesce

OP = "leaf-coalesce"
#: room asked for beyond the leaf's own size: a block of rounding plus BAT/bitmap growth of the parent
SPACE_MARGIN = DEFAULT_BLOCK_SIZE

log = logging.getLogger(__name__)


def blocker(engine: Engine, doc: SrDocument, vdi: str) -> Optional[str]:
    """Why `vdi` cannot be leaf-coalesced now; None when it can. Reads datapath state: call under the SR lock."""
    rec = doc.vdis.get(vdi)
    if rec is None or rec.hidden:
        return "not a visible VDI"
    if rec.format != "vhd":
        return "a raw VDI has no parent"
    parent = doc.vdis.get(rec.parent or "")
    if parent is None or not parent.hidden or parent.format != "vhd":
        return "its parent is not a hidden VHD base copy"
    if [c.uuid for c in doc.children(parent.uuid)] != [vdi]:
        return "its parent has other children"
    if doc.children(vdi):
        return "it has children"
    if not rec.persistent:
        return "it is reset on boot (non-persistent): its parent is the content it resets to"
    if rec.cbt_enabled:
        # Its own layer is the record of what was written since the last snapshot (smapi.sr.cbtlog); the
        # hidden-chain coalesce keeps its chain at a base copy and the leaf.
        return "changed-block tracking is on: its own layer records the writes since its last snapshot"
    if parent.virtual_size > rec.virtual_size:
        return f"its parent ({parent.virtual_size} bytes) is larger than the VDI ({rec.virtual_size} bytes)"
    states = engine.run.dp_states(engine.sr, vdi)
    if states:
        return f"it has datapaths on this host ({states})"
    elsewhere = engine.substrate.active_elsewhere(vdi)
    if elsewhere is not None:
        return f"it is active on {elsewhere}"
    return None


def find_leaf_coalescable(engine: Engine, doc: SrDocument, skip: Set[str]) -> Optional[str]:
    """A leaf that can be merged with its parent; deepest chains first (they are closest to the limit)."""
    found = [(-doc.depth(r.uuid), r.uuid) for r in doc.visible()
             if r.uuid not in skip and blocker(engine, doc, r.uuid) is None]
    return min(found)[1] if found else None


def space_shortfall(engine: Engine, doc: SrDocument, vdi: str) -> Optional[str]:
    """Why the SR cannot take the growth of the parent; None when it can."""
    need = engine.substrate.volume_utilisation(doc.vdis[vdi].volume) + SPACE_MARGIN
    free = engine.free_space(doc)
    if need > free:
        return f"merging may need up to {need} bytes and the SR has {free} bytes free"
    return None


def leaf_coalesce_one(engine: Engine, vdi: str) -> Tuple[bool, str]:
    """Merge `vdi` with its hidden parent; (False, reason) when it was skipped, leaving the chain as it was."""
    lock = engine.vdi_lock(vdi)
    # held(): this thread may hold the VDI itself (an open handle); the re-entrant lock would let us in.
    if lock.held() or not lock.acquire(timeout=0):
        return False, "busy: a data handle or a verb holds the VDI"
    try:
        with engine.sr_lock().hold():
            doc = engine.load()
            why = blocker(engine, doc, vdi) or space_shortfall(engine, doc, vdi)
            if why:
                return False, why
            rec = doc.vdis[vdi]
            parent = doc.vdis[rec.parent or ""]
            entry = engine.journal.begin(OP, vdi=vdi, parent=parent.uuid, leaf_volume=rec.volume,
                                         parent_volume=parent.volume, step="copy")
        fault_point(f"{OP}.begin")
        try:
            copy_into_parent(engine, rec.volume)
        except BaseException as e:
            with engine.sr_lock().hold():
                engine.journal.end(entry)  # rolled back: what was copied is covered by the leaf
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                return False, f"ran out of space while copying into the parent: {e.strerror}"
            raise
        fault_point(f"{OP}.copied")
        with engine.sr_lock().hold():
            why = attach_cancelled(engine, entry) or blocker(engine, engine.load(), vdi)
            if why:
                engine.journal.end(entry)
                return False, why
            finish(engine, entry)
        return True, ""
    finally:
        lock.release()


def copy_into_parent(engine: Engine, leaf_volume: str) -> None:
    backing = engine.substrate.open_volume(leaf_volume)
    try:
        vhd_coalesce(backing, resolver=engine.substrate.resolver())
    finally:
        backing.close()


def attach_cancelled(engine: Engine, entry: JournalEntry) -> Optional[str]:
    stored = engine.substrate.load_document(entry.key)
    if stored is None:
        return "its journal entry was replayed by someone else"
    if stored.get("data", {}).get("cancelled"):
        return "it was attached while its data was being copied"
    return None


def finish(engine: Engine, entry: JournalEntry) -> None:
    """Roll forward from the end of the copy; idempotent. The caller holds the SR lock, and nobody writes the
    leaf: the live collector holds its VDI lock, and a replayed entry is finished before anyone else looks."""
    d = entry.data
    if d.get("step") != "rename":
        engine.journal.update(entry, step="rename")
        fault_point(f"{OP}.decided")
    doc = engine.load()
    if d["parent"] in doc.vdis:
        sub = engine.substrate
        if sub.volume_exists(d["parent_volume"]):  # else the rename happened before a crash
            sub.rename_volume(d["parent_volume"], d["leaf_volume"])
        fault_point(f"{OP}.renamed")
        hide(engine, d["leaf_volume"], False)
        fault_point(f"{OP}.unhidden")
        rec = doc.vdis[d["vdi"]]
        rec.parent = doc.vdis[d["parent"]].parent
        del doc.vdis[d["parent"]]
        engine.save(doc)
        fault_point(f"{OP}.committed")
    engine.journal.end(entry)


@REPLAYERS.register(OP)
def replay(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Finish or forget a dead leaf-coalesce (the caller holds the SR lock); False when left for later."""
    if entry.data.get("step") == "rename":
        finish(engine, entry)
        return True
    if not include_coalesce:
        return False
    lock = engine.gc_lock()
    if not lock.acquire(timeout=0):
        return False  # a live collector may be copying: its entry is not ours to forget
    try:
        engine.journal.end(entry)
        return True
    finally:
        lock.release()


def cancel_for_attach(engine: Engine, vdi: str) -> None:
    """VDI.attach calls this under the SR lock: a datapath writes the leaf without its VDI lock, so a
    leaf-coalesce still copying it must not commit (the commit checks the mark under the SR lock)."""
    for entry in engine.journal.pending():
        d = entry.data
        if entry.op == OP and d.get("vdi") == vdi and d.get("step") == "copy" and not d.get("cancelled"):
            engine.journal.update(entry, cancelled=True)
