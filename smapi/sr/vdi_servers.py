"""The servers of this SR's VDIs on this host: which VDI is served, when, and what stops it.

Where servers run
    A VDI's nbdkit server (``smapi.datapath``) runs exactly while at least one of its datapaths on this host is
    *Activated*: the first activate starts it, the last deactivate stops it (nbdkit's exit commits the VHD
    metadata, so a deactivated VDI is complete on the SR, readable by another host or by ``open_vdi``). This is
    the classic ATOMIC_PAUSE split (attach prepares, activate spawns tapdisk): during a migration the destination
    attaches while the source still writes, and must not read the chain's metadata before the source lets go.

One state
    The engine's automaton states (``RunState``: ``<run>/dp/<sr>/<vdi>.json``) are the only record of datapaths;
    the datapath layer only knows which servers run, for which SR. Every datapath verb (under the SR lock and the
    VDI's host-local dp lock) makes the servers `follow` the states it is about to write, resources first and
    states second. A crash between the two leaves either an orphan server (states say nothing is active: the next
    verb on the VDI, SR.attach or SR.detach stops it) or an Activated state without a server (the next activate
    starts it again, as activate is idempotent).

Readers joining a writer
    The storage interface allows an RO datapath next to an RW one (not the reverse). Both use the one server, which
    runs in the mode of the superstate when it starts; RO datapaths are always handed the ``<vdi>@ro`` export name,
    on which the server refuses writes whatever its mode.

Chain-changing verbs while a server runs (`paused`)
    snapshot, clone, set_persistent(false), compose and resize rename or rewrite the leaf that a running nbdkit
    holds open (a split renames the leaf's file to the hidden base copy: a server left alone would write into the
    base copy). Like tapdisk pause/unpause around sm's snapshot, the verb stops the server (flush + exit, which
    commits), runs, and starts it again on the same socket over the new leaf. Connected clients see the connection
    close and must reconnect (qemu's NBD ``reconnect-delay``; nbdkit keeps no connection across a restart).
    ``epoch_begin`` (reset on boot) of an activated VDI is refused (VDIInUse): it would drop a running VM's disk.

Volumes prepared for a writer (LVM thin): see `smapi.sr.inflate`.

Host restarts
    ``<run>/boot_id`` names the boot that wrote the run directory. SR.attach under another boot drops every
    engine datapath state and the records of servers that do not run any more (no process of another boot is
    signalled).
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager, suppress
from typing import Any, Dict, Iterator, List, Optional

from smapi import datapath as dpio
from smapi.common.files import atomic_write
from smapi.datapath import blockdev
from smapi.datapath import runtime as dpruntime
from smapi.interface.errors import Backend_error
from smapi.sr import automaton
from smapi.sr.engine import Engine
from smapi.sr.inflate import finish_writer, owner, prepare_writer
from smapi.sr.records import VdiRecord

log = logging.getLogger(__name__)

BOOT_FILE = "boot_id"


def run_dir(engine: Engine) -> str:
    return engine.run.root


def in_use(vdi: str, why: str) -> Backend_error:
    return Backend_error.classic("VDIInUse", f"VDI {vdi}: {why}")


# ------------------------------------------------------------------------------------------------ servers
def _running(engine: Engine, vdi: str) -> bool:
    return dpio.serving(vdi, owner=owner(engine), run_dir=run_dir(engine))


def _start(engine: Engine, rec: VdiRecord, readonly: bool) -> None:
    if not readonly:
        prepare_writer(engine, rec)
    try:
        _serve(engine, rec, readonly)
    except BaseException:
        if not readonly:
            with suppress(Exception):
                finish_writer(engine, rec.uuid)
        raise


def _serve(engine: Engine, rec: VdiRecord, readonly: bool) -> None:
    image = engine.substrate.datapath_image(rec.volume, rec.format)
    try:
        dpio.start(rec.uuid, image, readonly=readonly, owner=owner(engine), run_dir=run_dir(engine),
                   lease=engine.substrate.activation_lease(rec.uuid, readonly=readonly))
    except dpio.DatapathInUse as e:
        raise in_use(rec.uuid, f"served for another SR on this host ({e})") from e
    except dpio.DatapathError as e:
        raise Backend_error.classic("VDIUnavailable", f"cannot serve VDI {rec.uuid}: {e}") from e


def _stop(engine: Engine, vdi: str) -> None:
    """Flush and stop this SR's server of `vdi` (if any), removing its socket; never fails for a missing one."""
    dpio.stop(vdi, owner=owner(engine), run_dir=run_dir(engine))
    finish_writer(engine, vdi)


def follow(engine: Engine, rec: VdiRecord, states: Dict[str, str]) -> None:
    """Make `vdi`'s servers match `states` (the engine's datapath states about to be written)."""
    superstate = automaton.superstate(states)
    if automaton.is_activated(superstate):
        if not _running(engine, rec.uuid):
            _start(engine, rec, readonly=automaton.mode_of(superstate) == "RO")
    else:
        _stop(engine, rec.uuid)
    if superstate == automaton.DETACHED:
        blockdev.release(run_dir(engine), rec.uuid)


def flush(engine: Engine, vdi: str) -> None:
    """Make every write through `vdi`'s server durable in the image (a deactivate that leaves it running)."""
    try:
        dpio.flush(vdi, run_dir=run_dir(engine))
    except dpio.DatapathError as e:
        raise Backend_error.classic("VDIUnavailable", f"flushing VDI {vdi}: {e}") from e


# ------------------------------------------------------------------------------------------------ chain changes
@contextmanager
def paused(engine: Engine, *vdis: str) -> Iterator[None]:
    """Around a verb that changes these VDIs' chains: stop their servers, restart them on the new leaves after.

    The caller holds the SR lock (and the VDIs' locks); the VDIs' host-local dp locks are held too, so neither
    SR.detach nor a datapath verb slips in between. A restart that fails after a successful verb is logged, not
    raised: the verb is committed, and the next activate starts the server again.
    """
    locks = [engine.run.dp_lock(engine.sr, v) for v in sorted(set(vdis))]
    held: List[Any] = []
    stopped: List[str] = []
    try:
        for lock in locks:
            lock.acquire()
            held.append(lock)
        for vdi in sorted(set(vdis)):
            if _running(engine, vdi):
                _stop(engine, vdi)
                stopped.append(vdi)
        yield
    finally:
        try:
            for vdi in stopped:
                _restart(engine, vdi)
        finally:
            for lock in reversed(held):
                lock.release()


def _restart(engine: Engine, vdi: str) -> None:
    superstate = automaton.superstate(engine.run.dp_states(engine.sr, vdi))
    try:
        rec = engine.load().vdis.get(vdi)
        if rec is not None and automaton.is_activated(superstate):
            _start(engine, rec, readonly=automaton.mode_of(superstate) == "RO")
    except Exception as e:  # noqa: BLE001 - see paused(): the verb's own outcome stands
        log.error("restarting the datapath of VDI %s after a chain change failed: %s", vdi, e)


def refuse_if_open_for_writing(engine: Engine, vdi: str) -> None:
    """Activate's half of the writer exclusion (`access.open_vdi` is the other): the NBD server does not take the
    VDI lock, so a VM must not start on a disk an import, export or transfer exposure holds open for writing."""
    writer = engine.run.writer_lock(engine.sr, vdi)
    # held(): this very thread has the handle open (the try-lock would let it in again, the lock is re-entrant).
    if writer.held() or not writer.acquire(exclusive=False, timeout=0):
        raise in_use(vdi, "it is open for writing on this host (an import or a transfer exposure); "
                          "activate it once that ends")
    writer.release()


def refuse_if_active(engine: Engine, vdi: str, what: str) -> None:
    states = engine.run.dp_states(engine.sr, vdi)
    if automaton.is_activated(automaton.superstate(states)):
        raise in_use(vdi, f"{what} while it is activated on this host ({states}); deactivate it first")


# ------------------------------------------------------------------------------------------------ SR-wide
def release_all(engine: Engine) -> None:
    """Stop every server of this SR and forget every datapath state of it (SR.detach / destroy / reset)."""
    vdis = set(engine.run.vdis_with_datapaths(engine.sr))
    vdis |= set(dpio.served(run_dir(engine), owner(engine)))  # orphans of a crash
    for vdi in sorted(vdis):
        with engine.run.editing_dps(engine.sr, vdi) as states:
            _stop(engine, vdi)
            for dp in list(states):
                states[dp] = automaton.DETACHED
    for vdi in blockdev.recorded(run_dir(engine), owner(engine)):
        blockdev.release(run_dir(engine), vdi)


def at_sr_attach(engine: Engine) -> List[str]:
    """SR.attach: forget a previous boot's datapaths, drop records of dead servers and orphan servers of this SR.

    Returns the VDIs whose leftovers were cleaned (for logs and tests).
    """
    run = run_dir(engine)
    os.makedirs(run, exist_ok=True)
    boot_file = os.path.join(run, BOOT_FILE)
    current = dpruntime.boot_id()
    recorded: Optional[str] = None
    with suppress(OSError), open(boot_file) as f:
        recorded = f.read().strip()
    if recorded is not None and recorded != current:
        # Nothing of another boot is running: every engine datapath state under this run dir is stale.
        shutil.rmtree(os.path.join(run, "dp"), ignore_errors=True)
    cleaned = dpio.cleanup_stale(run)
    if recorded != current:
        _write(boot_file, current)
    # Servers of this SR that no Activated state accounts for (a caller killed between its two writes).
    for vdi in dpio.served(run, owner(engine)):
        with engine.run.editing_dps(engine.sr, vdi) as states:
            if not automaton.is_activated(automaton.superstate(states)):
                _stop(engine, vdi)
                cleaned.append(vdi)
    # Loop devices of VDIs no datapath holds any more (a verb killed between making one and recording states).
    cleaned += blockdev.cleanup_stale(run, owner(engine), lambda vdi: automaton.superstate(
        engine.run.dp_states(engine.sr, vdi)) != automaton.DETACHED)
    return sorted(set(cleaned))


def _write(path: str, text: str) -> None:
    atomic_write(path, text + "\n")
