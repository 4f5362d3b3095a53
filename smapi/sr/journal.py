"""Intent journal: a multi-step operation records what it is about to do before touching anything.

An entry is one metadata document `journal/<op>-<id>` holding the operation's name and the names it will
create, rename or delete. It is written (atomically) before the first step and removed after the last one, so a
journal entry found at attach or scan time is the mark of a process that died half-way; it is then replayed:
the operation is rolled forward or back from the entry and the state found.

Replay is looked up by op name in `REPLAYERS`, which the verb modules fill, each next to the code that writes
that op's entries. The engine does not import those modules (they import the engine): whoever builds an
engine hands it the table (`smapi.sr.assembly`). Short verbs hold the SR lock from their first step to their
last, so whoever holds the SR lock and finds one of their entries knows its writer is dead; entries of long
operations (coalesce, leaf-coalesce, upload, inflate) say themselves when they are not ours to replay.

Rules (the SR document commit is each operation's point of no return: an entry is rolled forward only when its
commit happened, else back; a verb that fails replays its own entry at once, `smapi.sr.undo`, so an operation
whose caller saw it fail is never finished later):
    create/destroy  record present -> keep it; absent -> remove the volume                (lifecycle)
    resize          document still at the old size -> the image goes back to it            (lifecycle)
    snapshot/clone/persist   base recorded -> done (re-hide it); else remove the new child, un-split the leaf
    compose         base recorded -> done (drop vdi2's old image kept aside); else vdi2's image and parent
                    back, un-split vdi1                                                    (snapshots)
    coalesce        finished only by whoever gets the gc lock                               (gc)
    leaf-coalesce   step "copy" -> forgotten (gc lock holder only); "rename" -> finished   (leafcoalesce)
    inflate         a thin leaf inflated for a read-write server: kept while that server runs, else deflated
                                                                                           (inflate)
    upload          only when the uploader is gone: "receive" -> dropped; "commit" -> finished by a copy;
                    "relink"/"replace" -> the in-place landing rolled forward              (scratch)
An op with no replayer was written by a newer version: its entry is left for that version.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping

from smapi.sr.substrate import Substrate

if TYPE_CHECKING:
    from smapi.sr.engine import Engine


@dataclass
class JournalEntry:
    key: str
    op: str
    data: Dict[str, Any] = field(default_factory=dict)


class Journal:
    def __init__(self, substrate: Substrate) -> None:
        self.substrate = substrate

    def begin(self, op: str, **data: Any) -> JournalEntry:
        key = f"journal/{op}-{uuidlib.uuid4().hex[:12]}"
        self.substrate.store_document(key, {"op": op, "data": data})
        return JournalEntry(key, op, data)

    def update(self, entry: JournalEntry, **data: Any) -> None:
        """Record progress (e.g. that the metadata commit happened) where recovery must know it."""
        entry.data.update(data)
        self.substrate.store_document(entry.key, {"op": entry.op, "data": entry.data})

    def end(self, entry: JournalEntry) -> None:
        self.substrate.remove_document(entry.key)

    def pending(self) -> List[JournalEntry]:
        out = []
        for key in self.substrate.list_documents("journal/"):
            doc = self.substrate.load_document(key)
            if doc is not None:
                out.append(JournalEntry(key, doc.get("op", ""), doc.get("data", {})))
        return out


#: Finishes or undoes one dead entry; the caller holds the SR lock. Given whether coalesce work may be replayed
#: (`include_coalesce`), it returns True when the entry is done (and ended), False to leave it for later.
Replayer = Callable[["Engine", JournalEntry, bool], bool]


class Replayers(Mapping[str, Replayer]):
    """Journal replay by op name: one registration per op."""

    def __init__(self) -> None:
        self._by_op: Dict[str, Replayer] = {}

    def register(self, *ops: str) -> Callable[[Replayer], Replayer]:
        def add(replayer: Replayer) -> Replayer:
            for op in ops:
                if op in self._by_op:
                    raise ValueError(f"journal op {op!r} already has a replayer: {self._by_op[op]!r}")
                self._by_op[op] = replayer
            return replayer

        return add

    def __getitem__(self, op: str) -> Replayer:
        return self._by_op[op]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_op)

    def __len__(self) -> int:
        return len(self._by_op)


#: filled by the verb modules (`@REPLAYERS.register(op)` next to the code writing `op`'s entries)
REPLAYERS = Replayers()


def replay_pending(engine: Engine, replayers: Mapping[str, Replayer], *, include_coalesce: bool) -> List[str]:
    """Replay dead journal entries; returns the keys of those finished (for logs and tests)."""
    done: List[str] = []
    with engine.sr_lock().hold():
        for entry in engine.journal.pending():
            replayer = replayers.get(entry.op)
            if replayer is not None and replayer(engine, entry, include_coalesce):
                done.append(entry.key)
    return done
