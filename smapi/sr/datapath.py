"""attach / activate / deactivate / detach per datapath, and the SR-wide teardown of detach and destroy.

Datapath states are host-local (run directory). They are changed while holding the SR lock, so a concurrent
VDI.destroy (which refuses VDIs with live datapaths) sees either the state before or after. For the same reason
the collector's leaf-coalesce skips VDIs with datapath state, and attach cancels one that is copying.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from smapi.interface.errors import Backend_error
from smapi.sr import automaton
from smapi.sr.engine import Engine
from smapi.sr.leafcoalesce import cancel_for_attach

Transition = Callable[[Dict[str, str]], str]


def _transition(engine: Engine, vdi: str, dp: str, step: Transition, what: str) -> Any:
    with engine.locked(what=what):
        rec = engine.visible(engine.load(), vdi)
        with engine.run.editing_dps(engine.sr, vdi) as states:
            states[dp] = step(states)
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
    return {
        "params": engine.substrate.volume_path(rec.volume),
        "xenstore_data": {"vdi-type": "vhd" if rec.format == "vhd" else "aio"},
    }


def activate(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_activate(s, dp), "VDI.activate")


def deactivate(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_deactivate(s, dp), "VDI.deactivate")


def detach(engine: Engine, dp: str, vdi: str) -> None:
    _transition(engine, vdi, dp, lambda s: automaton.after_detach(s, dp), "VDI.detach")


def release_all(engine: Engine) -> None:
    """Deactivate then detach every datapath of every VDI of the SR on this host (SR.detach / SR.destroy)."""
    for vdi in engine.run.vdis_with_datapaths(engine.sr):
        with engine.run.editing_dps(engine.sr, vdi) as states:
            for dp in list(states):
                states[dp] = automaton.DETACHED
