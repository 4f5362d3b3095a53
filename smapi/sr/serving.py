"""The engine's datapaths made real: which VDI has an NBD server, when, and what attach hands a consumer.

Where servers run
    A VDI's nbdkit server (``smapi.datapath``) runs exactly while at least one of its datapaths on this host is
    *Activated*: the first activate starts it, the last deactivate stops it (nbdkit's exit commits the VHD
    metadata, so a deactivated VDI is complete on the SR, readable by another host or by ``open_vdi``). This is
    the classic ATOMIC_PAUSE split (attach prepares, activate spawns tapdisk): during a migration the destination
    attaches while the source still writes, and must not read the chain's metadata before the source lets go.
    ``VDI.attach`` already answers the socket address (it is a pure function of the run directory and the VDI),
    so ``params`` / ``params_nbd`` are known at attach and usable from activate. A raw VDI's ``params`` is its
    file, usable from attach; its NBD export follows the same rule.

How state is kept (one truth)
    The engine's automaton states (``RunState``: ``<run>/dp/<sr>/<vdi>.json``) are the only record of datapaths.
    The datapath facade is driven with a single holder per SR (dp ``sr:<sr>``), so its own record says no more than
    "this VDI's server runs, in this mode, on this image". The facade's record is derived: every engine datapath
    verb (under the SR lock and the VDI's host-local dp lock) makes the server match the states it writes
    (`reconcile`), resources first and states second. A crash between the two leaves either an orphan server
    (states say nothing is active: the next verb on the VDI, SR.attach or SR.detach stops it) or an Activated
    state without a server (the next activate starts it again, as activate is idempotent).

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

Volumes prepared for a writer (LVM thin)
    A server must never need the substrate's tools (lvm) while it runs. `Substrate.writer_needs_preparation` says
    when a read-write server's volume needs `prepare_writer` first (a thin VHD leaf is inflated to its full size)
    and `finish_writer` after it stopped (deflated to what the VHD uses). The pair is journaled as
    ``journal/inflate-<vdi>``, written before the inflate and removed after the deflate; unlike other entries it
    belongs to a live server, so recovery finishes it only once no server of this host holds the VDI (the server
    was killed, or the host restarted).

Raw volumes on a device region
    A raw VDI that is one contiguous region of a block device (a raw LV) has no file to hand out: VDI.attach makes
    a loop device over the region (`smapi.datapath.blockdev`) and answers it as ``params``; the last detach,
    SR.detach and SR.attach (for devices no datapath state accounts for) release it. Its NBD export follows the
    usual rule; a raw volume that is not one region (a multi-segment LV) is reached through NBD only.

Host restarts
    ``<run>/boot_id`` names the boot that wrote the run directory. SR.attach under another boot drops every
    engine datapath state and lets ``smapi.datapath.cleanup_stale`` discard the facade's records (no process of
    another boot is signalled).
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
from smapi.interface.errors import Backend_error, Illegal_transition
from smapi.sr import automaton
from smapi.sr.engine import Engine
from smapi.sr.faults import fault_point
from smapi.sr.records import VdiRecord

log = logging.getLogger(__name__)

BOOT_FILE = "boot_id"
#: journal op of a volume prepared for a read-write server (kept while the server runs; see replay_inflate)
INFLATE_OP = "inflate"
INFLATE_PREFIX = f"journal/{INFLATE_OP}-"


def holder(engine: Engine) -> str:
    """The facade dp that stands for all of this SR's datapaths of a VDI."""
    return f"sr:{engine.sr}"


def run_dir(engine: Engine) -> str:
    return engine.run.root


def _in_use(vdi: str, why: str) -> Backend_error:
    return Backend_error.classic("VDIInUse", f"VDI {vdi}: {why}")


# ------------------------------------------------------------------------------------------------ attach info
def attach_info(engine: Engine, rec: VdiRecord, read_write: bool) -> Dict[str, Any]:
    """The storage interface's attach_info for one datapath (the server may not run yet: see the docstring)."""
    socket = dpio.NbdServer(run_dir(engine)).address(rec.uuid)
    export = rec.uuid if read_write else rec.uuid + dpio.READONLY_SUFFIX
    params_nbd = dpio.classic_params_nbd(socket, export)
    params = params_nbd
    if rec.format == "raw":
        image = engine.substrate.datapath_image(rec.volume, rec.format)
        if image.is_file:
            params = image.path
        elif image.block is not None:
            # One contiguous region of a device (a raw LV): a loop device over it, usable from attach on, as a
            # raw file is; released when the last datapath detaches.
            try:
                params = blockdev.ensure(run_dir(engine), rec.uuid, image.block, owner=holder(engine),
                                         readonly=not read_write)
            except dpio.DatapathError as e:
                raise Backend_error.classic("VDIUnavailable", f"no block device for VDI {rec.uuid}: {e}") from e
    local = params != params_nbd
    return {
        "params": params,
        "params_nbd": params_nbd,
        # Direct I/O is for a consumer opening the image itself (a raw file or device); over NBD it means nothing.
        "o_direct": local,
        "o_direct_reason": "" if local else "SR_NOT_SUPPORTED",
        "xenstore_data": {
            "vdi-type": "vhd" if rec.format == "vhd" else "aio",
            "vdi-uuid": rec.uuid,
            "nbd-uri": dpio.nbd_uri(socket, export),
            "mode": "w" if read_write else "r",
        },
    }


# ------------------------------------------------------------------------------------------------ servers
def _server_running(engine: Engine, vdi: str) -> bool:
    st = dpio.stat(vdi, run_dir=run_dir(engine))
    return holder(engine) in st["dps"] and bool(st["server"] and st["server"]["running"])


def _inflate_key(vdi: str) -> str:
    return f"{INFLATE_PREFIX}{vdi}"


def _prepare_writer(engine: Engine, rec: VdiRecord) -> None:
    """Journal, then prepare, the volume a read-write server is about to hold (LVM thin: inflate the leaf)."""
    sub = engine.substrate
    if not sub.writer_needs_preparation(rec.volume, rec.format):
        return
    key = _inflate_key(rec.uuid)
    if sub.load_document(key) is None:
        sub.store_document(key, {"op": INFLATE_OP, "data": {"vdi": rec.uuid, "volume": rec.volume,
                                                           "format": rec.format}})
    fault_point(f"{INFLATE_OP}.journaled")
    try:
        sub.prepare_writer(rec.volume, rec.format)
        fault_point(f"{INFLATE_OP}.inflated")
    except BaseException:
        # No room to inflate (SRNoSpace), most likely: give back whatever was taken, then report the cause.
        with suppress(Exception):
            sub.finish_writer(rec.volume, rec.format)
            sub.remove_document(key)
        raise


def _finish_writer(engine: Engine, vdi: str) -> None:
    """After the server of `vdi` stopped: undo `_prepare_writer` (deflate), then drop its journal entry."""
    sub = engine.substrate
    prepares = getattr(sub, "prepares_writers", None)
    if prepares is None or not prepares():
        return  # no substrate state to undo: spare every stop a metadata read
    doc = sub.load_document(_inflate_key(vdi))
    if doc is not None:
        data = doc.get("data", {})
        fault_point(f"{INFLATE_OP}.stopped")
        sub.finish_writer(data["volume"], data["format"])
        fault_point(f"{INFLATE_OP}.deflated")
        sub.remove_document(_inflate_key(vdi))


def replay_inflate(engine: Engine, key: str, data: Dict[str, Any]) -> bool:
    """Recovery of an inflate entry: kept while its server runs on this host, else the volume is deflated (the
    server died with its host or was killed). True when the entry was finished."""
    if _server_running(engine, data["vdi"]):
        return False
    engine.substrate.finish_writer(data["volume"], data["format"])
    engine.substrate.remove_document(key)
    return True


def _start(engine: Engine, rec: VdiRecord, readonly: bool) -> None:
    if not readonly:
        _prepare_writer(engine, rec)
    image = engine.substrate.datapath_image(rec.volume, rec.format)
    try:
        _serve(engine, rec, image, readonly)
    except BaseException:
        if not readonly:
            with suppress(Exception):
                _finish_writer(engine, rec.uuid)
        raise


def _serve(engine: Engine, rec: VdiRecord, image: dpio.ImageSpec, readonly: bool) -> None:
    run = run_dir(engine)
    try:
        try:
            dpio.attach(rec.uuid, image, dp=holder(engine), readonly=readonly, run_dir=run)
        except (Illegal_transition, dpio.DatapathError):
            st = dpio.stat(rec.uuid, run_dir=run)
            if set(st["dps"]) - {holder(engine)}:
                raise  # someone else's (another SR with this VDI uuid): never take it over
            # Our own leftover in the other mode or on an old image (a crash, a restart): replace it.
            dpio.detach(rec.uuid, dp=holder(engine), run_dir=run)
            dpio.attach(rec.uuid, image, dp=holder(engine), readonly=readonly, run_dir=run)
        dpio.activate(rec.uuid, dp=holder(engine), run_dir=run)
    except Illegal_transition as e:
        raise _in_use(rec.uuid, f"served for another SR on this host ({e})") from e
    except dpio.DatapathError as e:
        raise Backend_error.classic("VDIUnavailable", f"cannot serve VDI {rec.uuid}: {e}") from e


def _stop(engine: Engine, vdi: str) -> None:
    """Flush and stop this SR's server of `vdi` (if any), removing its socket; never fails for a missing one."""
    run = run_dir(engine)
    try:
        dpio.deactivate(vdi, dp=holder(engine), run_dir=run)  # flush first: stop must lose nothing
    except dpio.DatapathError as e:
        log.warning("flush of %s before stopping its server failed: %s", vdi, e)  # the exit commits anyway
    dpio.detach(vdi, dp=holder(engine), run_dir=run)
    dpio.NbdServer(run).remove_alias()  # only once no server of the run dir is left (long run dirs only)
    _finish_writer(engine, vdi)


def reconcile(engine: Engine, rec: VdiRecord, states: Dict[str, str]) -> None:
    """Make `vdi`'s server match `states` (the engine's datapath states about to be written)."""
    superstate = automaton.superstate(states)
    if automaton.is_activated(superstate):
        if not _server_running(engine, rec.uuid):
            _start(engine, rec, readonly=automaton.mode_of(superstate) == "RO")
    else:
        _stop(engine, rec.uuid)
    if superstate == automaton.DETACHED:
        blockdev.release(run_dir(engine), rec.uuid)


def flush(engine: Engine, vdi: str) -> None:
    """Make every write through `vdi`'s server durable in the image (a deactivate that leaves it running)."""
    try:
        dpio.NbdServer(run_dir(engine)).flush(vdi)
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
            if _server_running(engine, vdi):
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
    states = engine.run.dp_states(engine.sr, vdi)
    try:
        rec = engine.load().vdis.get(vdi)
        if rec is not None and automaton.is_activated(automaton.superstate(states)):
            _start(engine, rec, readonly=automaton.mode_of(automaton.superstate(states)) == "RO")
    except Exception as e:  # noqa: BLE001 - see paused(): the verb's own outcome stands
        log.error("restarting the datapath of VDI %s after a chain change failed: %s", vdi, e)


def refuse_if_open_for_writing(engine: Engine, vdi: str) -> None:
    """Activate's half of the writer exclusion (`access.open_vdi` is the other): the NBD server does not take the
    VDI lock, so a VM must not start on a disk an import, export or transfer exposure holds open for writing."""
    writer = engine.run.writer_lock(engine.sr, vdi)
    # held(): this very thread has the handle open (the try-lock would let it in again, the lock is re-entrant).
    if writer.held() or not writer.acquire(exclusive=False, timeout=0):
        raise _in_use(vdi, "it is open for writing on this host (an import or a transfer exposure); "
                           "activate it once that ends")
    writer.release()


def refuse_if_active(engine: Engine, vdi: str, what: str) -> None:
    states = engine.run.dp_states(engine.sr, vdi)
    if automaton.is_activated(automaton.superstate(states)):
        raise _in_use(vdi, f"{what} while it is activated on this host ({states}); deactivate it first")


# ------------------------------------------------------------------------------------------------ SR-wide
def release_all(engine: Engine) -> None:
    """Stop every server of this SR and forget every datapath state of it (SR.detach / destroy / reset)."""
    ours = holder(engine)
    vdis = set(engine.run.vdis_with_datapaths(engine.sr))
    vdis |= {v for v, dps in dpio.attached(run_dir(engine)).items() if ours in dps}  # orphans of a crash
    for vdi in sorted(vdis):
        with engine.run.editing_dps(engine.sr, vdi) as states:
            _stop(engine, vdi)
            for dp in list(states):
                states[dp] = automaton.DETACHED
    for vdi in blockdev.recorded(run_dir(engine), ours):
        blockdev.release(run_dir(engine), vdi)


def at_sr_attach(engine: Engine) -> List[str]:
    """SR.attach: forget a previous boot's datapaths, drop stale records and orphan servers of this SR.

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
    ours = holder(engine)
    for vdi, dps in dpio.attached(run).items():
        if ours in dps:
            with engine.run.editing_dps(engine.sr, vdi) as states:
                if not automaton.is_activated(automaton.superstate(states)):
                    _stop(engine, vdi)
                    cleaned.append(vdi)
    # Loop devices of VDIs no datapath holds any more (a verb killed between making one and recording states).
    cleaned += blockdev.cleanup_stale(run, ours, lambda vdi: automaton.superstate(
        engine.run.dp_states(engine.sr, vdi)) != automaton.DETACHED)
    return sorted(set(cleaned))


def _write(path: str, text: str) -> None:
    atomic_write(path, text + "\n")
