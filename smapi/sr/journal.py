"""Intent journal: a multi-step operation records what it is about to do before touching anything.

An entry is one metadata document `journal/<op>-<id>` holding the operation's name and the names it will
create, rename or delete. It is written (atomically) before the first step and removed after the last one, so a
journal entry found at attach or scan time is the mark of a process that died half-way; `recovery` then rolls
the operation forward or back from the entry and the state it finds.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Dict, List

from smapi.sr.substrate import Substrate


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
