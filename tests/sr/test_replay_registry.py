"""Journal replay by op name: every op the engine writes has exactly one replayer, registered by the module that
writes it; an entry with no replayer (a newer version's) is left alone; the engine runs what it was given."""

from __future__ import annotations

from typing import List

import pytest

from smapi.sr import assembly
from smapi.sr.directory import DirectorySubstrate
from smapi.sr.engine import Engine, EngineVerbs
from smapi.sr.journal import REPLAYERS, JournalEntry, Replayers
from smapi.sr.records import SrDocument
from smapi.sr.substrate import Substrate

#: every journal op the engine writes, and the module that writes (and replays) it
WRITERS = {
    "create": "smapi.sr.lifecycle", "destroy": "smapi.sr.lifecycle", "resize": "smapi.sr.lifecycle",
    "snapshot": "smapi.sr.snapshots", "clone": "smapi.sr.snapshots", "persist": "smapi.sr.snapshots",
    "compose": "smapi.sr.snapshots", "coalesce": "smapi.sr.gc", "leaf-coalesce": "smapi.sr.leafcoalesce",
    "upload": "smapi.sr.scratch", "inflate": "smapi.sr.inflate", "data-destroy": "smapi.sr.cbt",
}


def test_every_op_has_its_replayer_from_the_module_that_writes_it() -> None:
    assert assembly.VERBS.replayers is REPLAYERS
    assert {op: REPLAYERS[op].__module__ for op in REPLAYERS} == WRITERS


def test_one_registration_per_op() -> None:
    table = Replayers()
    table.register("a", "b")(lambda engine, entry, include_coalesce: True)
    with pytest.raises(ValueError, match="'b' already has a replayer"):
        table.register("b")(lambda engine, entry, include_coalesce: True)
    assert sorted(table) == ["a", "b"]


@pytest.fixture
def substrate(tmp_path) -> Substrate:
    sub = DirectorySubstrate(str(tmp_path / "sr"))
    sub.initialise()
    sub.store_document(Substrate.SR_DOCUMENT, SrDocument(uuid="sr-1").to_dict())
    return sub


def test_the_engine_replays_with_the_table_it_was_given(substrate: Substrate) -> None:
    seen: List[str] = []

    def finish(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
        seen.append(f"{entry.op}:{include_coalesce}")
        engine.journal.end(entry)
        return True

    verbs = EngineVerbs(replayers={"mine": finish}, collect=assembly.VERBS.collect,
                        schedule_gc=assembly.VERBS.schedule_gc, open_vdi=assembly.VERBS.open_vdi)
    engine = Engine(substrate, "sr-1", verbs=verbs)
    mine = engine.journal.begin("mine", x=1)
    newer = engine.journal.begin("written-by-a-newer-version")
    assert engine.recover(include_coalesce=True) == [mine.key]
    assert seen == ["mine:True"]
    assert [e.key for e in engine.journal.pending()] == [newer.key]  # left for the version that knows it
    with engine.locked(what="a verb"):  # every verb replays first
        pass
    assert [e.key for e in engine.journal.pending()] == [newer.key]


def test_a_dead_create_is_rolled_back_through_the_registry(substrate: Substrate) -> None:
    engine = assembly.build_engine(substrate, "sr-1")
    volume = engine.volume_of("v1", "raw")
    engine.journal.begin("create", vdi="v1", volume=volume)
    substrate.create_volume(volume, 4096).close()
    assert engine.recover() and not substrate.volume_exists(volume)
    assert engine.journal.pending() == []
