"""Building an Engine with every verb module wired in.

The engine calls a few verb functions itself (journal replay before every verb, the collector, data handles), but
cannot import their modules: they import the engine. This module imports them all, which also lets each one
register the replay of the journal ops it writes (`smapi.sr.journal.REPLAYERS`), and hands them to the engine.
Everything that builds an engine (the storage interface, `EngineDriver.engine_for`, drivers) goes through
`build_engine`.
"""

from __future__ import annotations

from typing import Dict, Optional

from smapi.sr import access, background, cbt, gc, inflate, leafcoalesce, lifecycle, scratch, snapshots
from smapi.sr.engine import Engine, EngineVerbs
from smapi.sr.journal import REPLAYERS
from smapi.sr.substrate import Substrate

#: the modules whose replayers REPLAYERS holds once they are imported (named so the import is not unused)
REPLAYING_MODULES = (lifecycle, snapshots, gc, leafcoalesce, scratch, inflate, cbt)


def _collect(engine: Engine, wait: bool) -> Dict[str, int]:
    return gc.collect(engine, wait=wait)


def _open_vdi(engine: Engine, vdi: str, writable: bool) -> access.VdiHandle:
    return access.open_vdi(engine, vdi, writable=writable)


VERBS = EngineVerbs(replayers=REPLAYERS, collect=_collect, schedule_gc=background.schedule_gc, open_vdi=_open_vdi)


def build_engine(substrate: Substrate, sr: str, *, driver_ref: str = "",
                 device_config: Optional[Dict[str, str]] = None) -> Engine:
    return Engine(substrate, sr, verbs=VERBS, driver_ref=driver_ref, device_config=device_config)
