"""attach / activate / deactivate / detach per datapath, and the SR-wide teardown of detach and destroy.

Datapath states are host-local (run directory). They are changed while holding the SR lock, so a concurrent
VDI.destroy (which refuses VDIs with live datapaths) sees either the state before or after. For the same reason
the collector's leaf-coalesce skips VDIs with datapath state, and attach cancels one that is copying.

Each verb applies the automaton, makes the VDI's NBD server match the new states (`serving.reconcile`: a server
runs while some dp is activated), then writes the states; `serving` explains where servers start and why.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from smapi.interface.errors import Backend_error
from smapi.sr import automaton, serving
from smapi.sr.engine import Engine
from smapi.sr.leafcoalesce import cancel_for_attach

Transition = Callable[[Dict[str, str]], str]


def _transition(engine: Engine, vdi: str, dp: str, step: Transition, what: str) -> Any:
    with engine.locked(what=what):
        rec = engine.visible(engine.load(), vdi)
        with engine.run.editing_dps(engine.sr, vdi) as states:
            was = states.get(dp, automaton.DETACHED)
            states[dp] = step(states)
            leaving = automaton.is_activated(was) and not automaton.is_activated(states[dp])
            if leaving and automaton.is_activated(automaton.superstate(states)):
                serving.flush(engine, vdi)  # another dp keeps the server running: still flush this one's writes
            serving.reconcile(engine, rec, states)  # raises before the states are written
        return rec


def attach(engine: Engine, dp: str, vdi: str, read_write: bool) -> Dict[str, Any]:
    def step(states: Dict[str, str]) -> str:
        return automaton.after_attach(states, dp, read_write)

    with engine.locked(what="VDI.attach"):
        rec = engine.visible(engine.load(), vdi)
        if read_write and rec.read_only:
            raise Backend_error.classic("VDIUnavailable", f"VDI {vdi} is read-only; attach it read-only")
        # The datapath will open the volume without the VDI lock: a leaf-coalesce copying it must not commit.
        cancel_for_attach(engine, vdi)
        with engine.run.editing_dps(engine.sr, vdi) as states:
            states[dp] = step(states)
            # Attach starts nothing (activate does), but drops an orphan server a crashed verb left behind.
            serving.reconcile(engine, rec, states)
            # An RW dp keeping RW after an idempotent repeat, or an RO reader: the dp's own mode decides.
            return serving.attach_info(engine, rec, automaton.mode_of(states[dp]) == "RW")


def activate(engine: Engine, dp: str, vdi: str) -> None:
    def step(states: Dict[str, str]) -> str:
        new = automaton.after_activate(states, dp)
        if not automaton.is_activated(automaton.superstate(states)):
            serving.refuse_if_open_for_writing(engine, vdi)  # the server is about to start on the image
        return new

    _transition(engine, vdi, dp, step, "VDI.activate")


def deactivate(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_deactivate(s, dp), "VDI.deactivate")


def detach(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_detach(s, dp), "VDI.detach")


def release_all(engine: Engine) -> None:
    """Stop the servers and forget the datapaths of every VDI of the SR on this host (SR.detach / SR.destroy)."""
    serving.release_all(engine)
