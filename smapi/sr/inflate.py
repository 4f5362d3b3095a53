"""Volumes prepared for a read-write server (LVM thin), journaled as op "inflate".

A server must never need the substrate's tools (lvm) while it runs. `Substrate.writer_needs_preparation` says
when a read-write server's volume needs `prepare_writer` first (a thin VHD leaf is inflated to its full size)
and `finish_writer` after it stopped (deflated to what the VHD uses). The pair is journaled as
``journal/inflate-<vdi>``, written before the inflate and removed after the deflate; unlike other entries it
belongs to a live server, so replay finishes it only once no server of this host holds the VDI (the server was
killed, or the host restarted).
"""

from __future__ import annotations

from contextlib import suppress

from smapi import datapath as dpio
from smapi.sr.engine import Engine
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.records import VdiRecord

OP = "inflate"
PREFIX = f"journal/{OP}-"


def owner(engine: Engine) -> str:
    """What this SR's servers and loop devices are recorded under (in the host's run directory)."""
    return f"sr:{engine.sr}"


def _key(vdi: str) -> str:
    return f"{PREFIX}{vdi}"


def prepare_writer(engine: Engine, rec: VdiRecord) -> None:
    """Journal, then prepare, the volume a read-write server is about to hold (LVM thin: inflate the leaf)."""
    sub = engine.substrate
    if not sub.writer_needs_preparation(rec.volume, rec.format):
        return
    key = _key(rec.uuid)
    if sub.load_document(key) is None:
        sub.store_document(key, {"op": OP, "data": {"vdi": rec.uuid, "volume": rec.volume, "format": rec.format}})
    fault_point(f"{OP}.journaled")
    try:
        sub.prepare_writer(rec.volume, rec.format)
        fault_point(f"{OP}.inflated")
    except BaseException:
        # No room to inflate (SRNoSpace), most likely: give back whatever was taken, then report the cause.
        with suppress(Exception):
            sub.finish_writer(rec.volume, rec.format)
            sub.remove_document(key)
        raise


def finish_writer(engine: Engine, vdi: str) -> None:
    """After the server of `vdi` stopped: undo `prepare_writer` (deflate), then drop its journal entry."""
    sub = engine.substrate
    if not sub.prepares_writers():
        return  # no substrate state to undo: spare every stop a metadata read
    doc = sub.load_document(_key(vdi))
    if doc is not None:
        data = doc.get("data", {})
        fault_point(f"{OP}.stopped")
        sub.finish_writer(data["volume"], data["format"])
        fault_point(f"{OP}.deflated")
        sub.remove_document(_key(vdi))


@REPLAYERS.register(OP)
def replay(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Kept while its server runs (on this host, or on another one of a shared SR), else the volume is deflated
    (the server died with its host or was killed). True when the entry was finished."""
    data = entry.data
    if dpio.serving(data["vdi"], owner=owner(engine), run_dir=engine.run.root):
        return False
    if engine.substrate.active_elsewhere(data["vdi"]) is not None:
        return False  # a shared SR: the server is another host's (it holds the VDI's activation lease)
    engine.substrate.finish_writer(data["volume"], data["format"])
    engine.substrate.remove_document(entry.key)
    return True
