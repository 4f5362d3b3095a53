"""Replaying the journal: finish or undo what a dead process left half-done.

Short verbs hold the SR lock from their first step to their last, so whoever holds the SR lock and finds one of
their entries knows its writer is dead. A coalesce entry belongs to the garbage collector, which copies data
without the SR lock; it is replayed only by a process that also gets the `gc` lock.

Rules (the SR document commit is each operation's point of no return):
    create/destroy  record present -> keep it; absent -> remove the volume
    resize          the document takes the size the image itself reports
    snapshot/clone/persist   base recorded -> done (re-hide it); else remove the new child, un-split the leaf
    compose         base recorded -> done; reparent step reached -> redo it and commit; else un-split vdi1
    coalesce        see gc.replay_coalesce_if_idle (only by whoever gets the gc lock)
    leaf-coalesce   see leafcoalesce.replay: step "copy" -> forgotten (gc lock holder only); "rename" -> finished
    inflate         a thin leaf inflated for a read-write server: kept while that server runs, else deflated
    upload          see scratch.replay (only when the uploader is gone): "receive" -> dropped; "commit" -> finished
                    by a copy; "relink"/"replace" -> the in-place landing rolled forward (relink.finish)
"""

from __future__ import annotations

from typing import Callable, Dict, List

from smapi.sr.chains import hide, undo_split
from smapi.sr.engine import Engine
from smapi.sr.journal import JournalEntry
from smapi.sr.leafcoalesce import OP as LEAF_COALESCE
from smapi.sr.leafcoalesce import replay as replay_leaf_coalesce
from smapi.sr.lifecycle import actual_size
from smapi.sr.scratch import OP as UPLOAD
from smapi.sr.scratch import replay as replay_upload
from smapi.sr.serving import INFLATE_OP, replay_inflate
from smapi.sr.snapshots import commit_compose, finish_compose_images


def _create(engine: Engine, e: JournalEntry) -> None:
    if e.data["vdi"] not in engine.load().vdis:
        engine.substrate.remove_volume(e.data["volume"])


_destroy = _create  # an uncommitted destroy leaves the VDI as it was; a committed one lacks only the unlink


def _resize(engine: Engine, e: JournalEntry) -> None:
    doc = engine.load()
    rec = doc.vdis.get(e.data["vdi"])
    if rec is not None:
        rec.virtual_size = actual_size(engine, rec)
        engine.save(doc)


def _split_op(engine: Engine, e: JournalEntry) -> None:
    d = e.data
    if d["base"] in engine.load().vdis:
        hide(engine, d["base_volume"])
        return
    if d.get("new_volume"):
        engine.substrate.remove_volume(d["new_volume"])
    undo_split(engine, d["leaf_volume"], d["base_volume"])


def _compose(engine: Engine, e: JournalEntry) -> None:
    d = e.data
    doc = engine.load()
    if d["base"] in doc.vdis:
        return
    if d.get("step") == "reparent":
        hide(engine, d["base_volume"])
        finish_compose_images(engine, d)
        commit_compose(doc, d)
        engine.save(doc)
        return
    if d.get("rebase_volume"):
        engine.substrate.remove_volume(d["rebase_volume"])
    undo_split(engine, d["leaf_volume"], d["base_volume"])


HANDLERS: Dict[str, Callable[[Engine, JournalEntry], None]] = {
    "create": _create, "destroy": _destroy, "resize": _resize, "snapshot": _split_op, "clone": _split_op,
    "persist": _split_op, "compose": _compose,
}


def recover(engine: Engine, *, include_coalesce: bool = False) -> List[str]:
    """Replay dead journal entries; returns what was replayed (for logs and tests)."""
    done: List[str] = []
    with engine.sr_lock().hold():
        for entry in engine.journal.pending():
            if entry.op == "coalesce":
                if include_coalesce:
                    from smapi.sr.gc import replay_coalesce_if_idle

                    if replay_coalesce_if_idle(engine, entry):
                        done.append(entry.key)
                continue
            if entry.op == UPLOAD:
                if replay_upload(engine, entry):
                    done.append(entry.key)
                continue
            if entry.op == INFLATE_OP:
                # Owned by a running server, not by a dead verb: finished only once no server holds the volume.
                if replay_inflate(engine, entry.key, entry.data):
                    done.append(entry.key)
                continue
            if entry.op == LEAF_COALESCE:
                if replay_leaf_coalesce(engine, entry, include_coalesce=include_coalesce):
                    done.append(entry.key)
                continue
            handler = HANDLERS.get(entry.op)
            if handler is None:
                continue  # written by a newer version: leave it for that version
            handler(engine, entry)
            engine.journal.end(entry)
            done.append(entry.key)
    return done
