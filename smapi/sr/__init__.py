"""The SR engine: VDIs as VHD or raw images on a substrate, with journaled multi-step verbs, locks and GC.

Modules, one job each:
    substrate   the protocol a storage backend implements (volumes, documents, locks, space)
    directory   the directory substrate (file and NFS SRs)
    records     the SR document: SR names and one record per image
    journal     intent entries of multi-step operations, and their replay by op name (each verb module registers
                the replay of the ops it writes), at attach, scan and before every verb
    locks       flock-based, re-entrant, cross-process locks
    runstate    host-local state in $SMAPI_RUN_DIR (attached SRs, datapath states)
    automaton   the VDI datapath state machine
    engine      Engine: one SR on one substrate; shared helpers; never imports a verb module
    assembly    build_engine: an Engine with every verb module wired in (journal replay, GC, data handles)
    lifecycle   create, destroy, resize, record edits
    chains      image-level building blocks (split, child, reparent, sector copies)
    snapshots   snapshot, clone, compose, reset on boot
    attach      VDI.attach/activate/deactivate/detach per datapath (the automaton applied), attach_info
    vdi_servers the VDIs' servers (smapi.datapath) following the automaton: started at the first activate,
                stopped at the last deactivate, paused by chain changes; SR-wide release and boot cleanup
    inflate     volumes prepared for a read-write server (LVM thin), journaled
    gc          garbage collection and coalesce; background the sync/background/off policy
    leafcoalesce  merging a visible leaf VDI with its hidden single-child parent (a GC step)
    access      open_vdi data handles for tools
    scratch     upload scratches: an upload's writes land in a VDI all at once, or never (journaled)
    relink      landing a large upload scratch in place (it replaces the leaf or becomes it): no second copy
    copying     VDI.copy
    enginedriver EngineDriver, the light base class of engine-based drivers
    storage_interface  EngineSR / EngineVDI: the storage interface implemented on the engine
    faults      SMAPI_FAULT fault points for crash tests
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Engine", "Substrate"]


def __getattr__(name: str) -> Any:
    # Lazy: importing a submodule (e.g. enginedriver from a driver module) must not load the engine itself.
    if name == "Engine":
        return importlib.import_module("smapi.sr.engine").Engine
    if name == "Substrate":
        return importlib.import_module("smapi.sr.substrate").Substrate
    raise AttributeError(f"module 'smapi.sr' has no attribute {name!r}")
