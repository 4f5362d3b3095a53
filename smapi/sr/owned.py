"""What an SR owns on its substrate: the volumes SR.destroy may remove.

An SR directory can hold files that never belonged to the SR (an admin's own images, another tool's files), so
destroying the SR removes only the volumes its SR document lists and those its journal names (a process that
died half-way through creating or copying one), never "every *.vhd in the directory".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Set

from smapi.sr.records import SrDocument
from smapi.sr.substrate import Substrate

if TYPE_CHECKING:
    from smapi.sr.engine import Engine


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def owned_volumes(engine: Engine) -> Set[str]:
    """The existing volumes named by the SR document or a pending journal entry (by volume name or uuid)."""
    names: Set[str] = set()
    raw = engine.substrate.load_document(Substrate.SR_DOCUMENT)
    if raw is not None:
        for rec in SrDocument.from_dict(raw).vdis.values():
            names.update((rec.volume, rec.uuid))
    for entry in engine.journal.pending():
        names.update(_strings(entry.data))
    owned = set()
    for volume in engine.substrate.list_volumes():
        stem = volume.rsplit(".", 1)[0]
        if volume in names or stem in names:
            owned.add(volume)
    return owned
