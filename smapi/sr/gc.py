"""Garbage collection and coalesce of hidden base copies.

One pass, repeated until nothing is left to do:

* **garbage**: a hidden image without children is referenced by nobody; it is removed (journaled as a destroy).
* **coalesce**: a hidden image C whose parent P has C as its only child is merged into P: C's sectors are copied
  into P (`smapi.vhd.coalesce`), C's children are re-pointed at P, the document forgets C, C's volume goes.
* **leaf-coalesce** (only when neither of the above is left): a visible leaf VDI whose hidden parent has no
  other child is merged with it into one image that keeps the VDI's identity (see `leafcoalesce`).

Copying into P is safe while VDIs are in use, because every reader of P reads through C, and C covers every
sector the copy changes. The copy runs without the SR lock; the relink and commit take the VDI locks of every
visible VDI below C (without waiting: a busy VDI just postpones that coalesce) and then the SR lock, and re-read
the tree.

Removing C is not safe under a running server of a VDI below it: the server opened C when it started and reads
the sectors C holds from C. On LVM the freed extents go to the next LV created (the server would read another
VDI's bytes); on NFS another host's server would get ESTALE. So, as sm pauses the tapdisks of the children it
relinks, the commit stops this host's servers below C and starts them again on the new chain (`paused`), and a
coalesce under a VDI active on another host is postponed: that host's collector, or ours once it deactivates,
does it.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Set

from smapi.sr import vdi_servers
from smapi.sr.chains import reparent
from smapi.sr.engine import Engine
from smapi.sr.errors import mapped_errors
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.leafcoalesce import find_leaf_coalescable, leaf_coalesce_one
from smapi.sr.lifecycle import remove_record
from smapi.sr.locks import FileLock
from smapi.sr.records import SrDocument
from smapi.vhd import coalesce as vhd_coalesce

RELINK_ATTEMPTS = 3

log = logging.getLogger(__name__)


def find_garbage(doc: SrDocument) -> List[str]:
    return sorted(r.uuid for r in doc.vdis.values() if r.hidden and not doc.children(r.uuid))


def find_coalescable(doc: SrDocument, skip: Set[str]) -> Optional[str]:
    """A hidden image with children whose (hidden) parent has no other child; deepest chains first."""
    found = []
    for rec in doc.vdis.values():
        if not rec.hidden or rec.uuid in skip or not rec.parent or rec.parent not in doc.vdis:
            continue
        parent = doc.vdis[rec.parent]
        if parent.hidden and [c.uuid for c in doc.children(parent.uuid)] == [rec.uuid] and doc.children(rec.uuid):
            found.append((-doc.depth(rec.uuid), rec.uuid))
    return min(found)[1] if found else None


def collect(engine: Engine, *, wait: bool = True) -> Dict[str, int]:
    """Run GC passes until the SR has neither garbage nor coalescable chains. With `wait=False`, return at once
    when another collector is running (it will see our changes: it loops until there is nothing left)."""
    stats = {"deleted": 0, "coalesced": 0, "leaf_coalesced": 0, "skipped": 0}
    lock = engine.gc_lock()
    with mapped_errors("SR garbage collection"):
        if not lock.acquire(timeout=None if wait else 0):
            stats["skipped"] = 1
            return stats
        try:
            engine.recover(include_coalesce=True)
            skip: Set[str] = set()
            leaf_skip: Set[str] = set()
            while True:
                with engine.locked(what="SR garbage collection"):
                    doc = engine.load()
                    garbage = find_garbage(doc)
                    for uuid in garbage:
                        remove_record(engine, uuid)
                    stats["deleted"] += len(garbage)
                    candidate = None if garbage else find_coalescable(doc, skip)
                    # Hidden chains first: merging them can turn a leaf's parent into a single-child base.
                    leaf = None if garbage or candidate else find_leaf_coalescable(engine, doc, leaf_skip)
                if garbage:
                    continue
                if candidate is not None:
                    if coalesce_one(engine, candidate):
                        stats["coalesced"] += 1
                    else:
                        skip.add(candidate)
                        stats["skipped"] += 1
                    continue
                if leaf is None:
                    break
                done, why = leaf_coalesce_one(engine, leaf)
                if done:
                    stats["leaf_coalesced"] += 1
                else:
                    # Postponed, not failed: the chain is as it was, and the next collection looks again.
                    log.info("SR %s: leaf-coalesce of VDI %s skipped: %s", engine.sr, leaf, why)
                    leaf_skip.add(leaf)
                    stats["skipped"] += 1
        finally:
            lock.release()
    return stats


def coalesce_one(engine: Engine, child: str) -> bool:
    """Merge hidden `child` into its parent; False when its VDIs were busy (the copy is kept, harmlessly)."""
    with engine.sr_lock().hold():
        doc = engine.load()
        rec = doc.vdis[child]
        parent = doc.vdis[rec.parent or ""]
        entry = engine.journal.begin("coalesce", child=child, parent=parent.uuid, child_volume=rec.volume,
                                     parent_volume=parent.volume, step="copy")
    fault_point("coalesce.begin")
    copy_into_parent(engine, entry.data["child_volume"])
    fault_point("coalesce.copied")
    for _ in range(RELINK_ATTEMPTS):
        if relink_and_commit(engine, entry):
            return True
    # The children kept changing or stayed busy: the chain is still valid as it is; try again next pass.
    with engine.sr_lock().hold():
        engine.journal.end(entry)
    return False


def copy_into_parent(engine: Engine, child_volume: str) -> None:
    backing = engine.substrate.open_volume(child_volume)
    try:
        vhd_coalesce(backing, resolver=engine.substrate.resolver())
    finally:
        backing.close()


def visible_below(doc: SrDocument, uuid: str) -> List[str]:
    """Every visible VDI whose chain goes through `uuid` (its readers read sectors of `uuid`)."""
    return sorted(r.uuid for r in doc.visible() if uuid in doc.ancestors(r.uuid))


def relink_and_commit(engine: Engine, entry: JournalEntry) -> bool:
    with engine.sr_lock().hold():
        visible = visible_below(engine.load(), entry.data["child"])
    locks: List[FileLock] = []
    try:
        for uuid in sorted(visible):
            lock = engine.vdi_lock(uuid)
            # held(): this process may hold the VDI itself (an open handle, e.g. an upload that just relinked
            # and runs a sync collection): the re-entrant lock would let us relink under its open chain.
            if lock.held() or not lock.acquire(timeout=0):
                return False
            locks.append(lock)
        with engine.sr_lock().hold():
            doc = engine.load()
            if visible_below(doc, entry.data["child"]) != visible:
                return False
            return commit_coalesce(engine, doc, entry)
    finally:
        for lock in reversed(locks):
            lock.release()


def commit_coalesce(engine: Engine, doc: SrDocument, entry: JournalEntry) -> bool:
    """Relink the children, forget the child, remove its volume; the caller holds the SR lock. False (nothing
    changed) while a VDI below the child is active on another host: its server reads the child."""
    below = visible_below(doc, entry.data["child"])
    for vdi in below:
        elsewhere = engine.substrate.active_elsewhere(vdi)
        if elsewhere is not None:
            log.info("SR %s: coalesce of %s postponed: VDI %s below it is active on %s", engine.sr,
                     entry.data["child"], vdi, elsewhere)
            return False
    with vdi_servers.paused(engine, *below):
        _commit(engine, doc, entry)
    return True


def _commit(engine: Engine, doc: SrDocument, entry: JournalEntry) -> None:
    d = entry.data
    engine.journal.update(entry, step="relink")
    child, parent = doc.vdis[d["child"]], doc.vdis[d["parent"]]
    children = doc.children(child.uuid)
    for c in children:
        reparent(engine, c.volume, parent.volume)
    fault_point("coalesce.relinked")
    parent.virtual_size = max(parent.virtual_size, child.virtual_size)
    for c in children:
        c.parent = parent.uuid
    del doc.vdis[child.uuid]
    engine.save(doc)
    fault_point("coalesce.committed")
    engine.substrate.remove_volume(child.volume)
    fault_point("coalesce.removed")
    engine.journal.end(entry)


@REPLAYERS.register("coalesce")
def replay_coalesce_if_idle(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Finish a dead collector's coalesce (the caller holds the SR lock); False if a collector is alive, or when
    coalesce work is not to be replayed now (`include_coalesce`: by SR.attach, SR.scan and the collector only)."""
    if not include_coalesce:
        return False
    lock = engine.gc_lock()
    if not lock.acquire(timeout=0):
        return False
    try:
        doc = engine.load()
        d = entry.data
        if d["child"] not in doc.vdis:  # committed: only the unlink may be missing
            engine.substrate.remove_volume(d["child_volume"])
            engine.journal.end(entry)
            return True
        if d.get("step") != "relink":
            copy_into_parent(engine, d["child_volume"])  # a copy cut short is simply done again
        # False: a VDI below is active on another host; the entry stays for a later replay
        return commit_coalesce(engine, doc, entry)
    finally:
        lock.release()
