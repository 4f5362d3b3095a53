"""VDI.attach / activate / deactivate / detach per datapath, and what attach hands a consumer.

Datapath states are host-local (run directory). They are changed while holding the SR lock, so a concurrent
VDI.destroy (which refuses VDIs with live datapaths) sees either the state before or after. For the same reason
the collector's leaf-coalesce skips VDIs with datapath state, and attach cancels one that is copying.

Each verb applies the automaton, makes the VDI's servers follow the new states (`vdi_servers.follow`: a server
runs while some dp is activated), then writes the states; `vdi_servers` explains where servers start and why.

What attach answers
    ``VDI.attach`` already answers the socket address (a pure function of the run directory and the VDI), so
    ``params`` / ``params_nbd`` are known at attach and usable from activate. A raw VDI's ``params`` is its file,
    usable from attach; its NBD export follows the same rule. A raw VDI that is one contiguous region of a block
    device (a raw LV) has no file to hand out: attach makes a loop device over the region
    (`smapi.datapath.blockdev`) and answers it as ``params``; the last detach, SR.detach and SR.attach (for
    devices no datapath state accounts for) release it. A raw volume that is not one region (a multi-segment LV)
    is reached through NBD only.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from smapi import datapath as dpio
from smapi.datapath import blockdev
from smapi.interface.errors import Backend_error
from smapi.sr import automaton, vdi_servers
from smapi.sr.engine import Engine
from smapi.sr.inflate import owner
from smapi.sr.leafcoalesce import cancel_for_attach
from smapi.sr.records import VdiRecord

Transition = Callable[[Dict[str, str]], str]


def attach_info(engine: Engine, rec: VdiRecord, read_write: bool) -> Dict[str, Any]:
    """The storage interface's attach_info for one datapath (the server may not run yet: see the docstring)."""
    run = engine.run.root
    socket = dpio.address(rec.uuid, run_dir=run)
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
                params = blockdev.ensure(run, rec.uuid, image.block, owner=owner(engine), readonly=not read_write)
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


def _transition(engine: Engine, vdi: str, dp: str, step: Transition, what: str) -> Any:
    with engine.locked(what=what):
        rec = engine.visible(engine.load(), vdi)
        with engine.run.editing_dps(engine.sr, vdi) as states:
            was = states.get(dp, automaton.DETACHED)
            states[dp] = step(states)
            leaving = automaton.is_activated(was) and not automaton.is_activated(states[dp])
            if leaving and automaton.is_activated(automaton.superstate(states)):
                vdi_servers.flush(engine, vdi)  # another dp keeps the server running: still flush this one's writes
            vdi_servers.follow(engine, rec, states)  # raises before the states are written
        return rec


def attach(engine: Engine, dp: str, vdi: str, read_write: bool) -> Dict[str, Any]:
    def step(states: Dict[str, str]) -> str:
        return automaton.after_attach(states, dp, read_write)

    with engine.locked(what="VDI.attach"):
        rec = engine.visible(engine.load(), vdi)
        if read_write and rec.read_only:
            raise Backend_error.classic("VDIUnavailable", f"VDI {vdi} is read-only; attach it read-only")
        engine.substrate.prepare_activation(vdi)
        # The datapath will open the volume without the VDI lock: a leaf-coalesce copying it must not commit.
        cancel_for_attach(engine, vdi)
        with engine.run.editing_dps(engine.sr, vdi) as states:
            states[dp] = step(states)
            # Attach starts nothing (activate does), but drops an orphan server a crashed verb left behind.
            vdi_servers.follow(engine, rec, states)
            # An RW dp keeping RW after an idempotent repeat, or an RO reader: the dp's own mode decides.
            return attach_info(engine, rec, automaton.mode_of(states[dp]) == "RW")


def activate(engine: Engine, dp: str, vdi: str) -> None:
    def step(states: Dict[str, str]) -> str:
        new = automaton.after_activate(states, dp)
        if not automaton.is_activated(automaton.superstate(states)):
            vdi_servers.refuse_if_open_for_writing(engine, vdi)  # the server is about to start on the image
        return new

    _transition(engine, vdi, dp, step, "VDI.activate")


def deactivate(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_deactivate(s, dp), "VDI.deactivate")


def detach(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_detach(s, dp), "VDI.detach")
