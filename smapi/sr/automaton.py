"""The VDI state automaton of the storage interface (vdi_automaton.ml), per datapath and combined.

A VDI is Detached, Attached(RO|RW) or Activated(RO|RW) on each datapath (dp). The rules: activate needs an
attach first, detach needs a deactivate first, and one VDI cannot be attached read-only on one datapath and
read-write on another when the read-only one came first (nor go from RO to RW on one
datapath). A refused transition raises
`Illegal_transition(current, requested)`, states written `Detached`, `Attached(RO)`, `Activated(RW)`.
"""

from __future__ import annotations

from typing import Dict, Optional

from smapi.interface.errors import Illegal_transition

DETACHED = "Detached"


def attached(mode: str) -> str:
    return f"Attached({mode})"


def activated(mode: str) -> str:
    return f"Activated({mode})"


def mode_of(state: str) -> Optional[str]:
    if state == DETACHED:
        return None
    return state[state.index("(") + 1: -1]


def is_activated(state: str) -> bool:
    return state.startswith("Activated")


def superstate(states: Dict[str, str]) -> str:
    """Activated if any dp is activated; RW if any dp is RW (the reference's combination rule)."""
    live = [s for s in states.values() if s != DETACHED]
    if not live:
        return DETACHED
    mode = "RW" if any(mode_of(s) == "RW" for s in live) else "RO"
    return activated(mode) if any(is_activated(s) for s in live) else attached(mode)


def after_attach(states: Dict[str, str], dp: str, read_write: bool) -> str:
    mode = "RW" if read_write else "RO"
    current = states.get(dp, DETACHED)
    others = {d: s for d, s in states.items() if d != dp}
    other_super = superstate(others)
    if other_super != DETACHED and mode_of(other_super) == "RO" and mode == "RW":
        # Readers were promised stable content; a writer joining them would change it under their feet.
        # (Readers joining a writer is allowed: the superstate stays RW, as in vdi_automaton.ml.)
        raise Illegal_transition(other_super, attached(mode))
    if current == DETACHED:
        return attached(mode)
    if mode_of(current) == "RO" and mode == "RW":
        raise Illegal_transition(current, attached(mode))
    return current  # re-attaching is idempotent (an RW datapath stays RW)


def after_activate(states: Dict[str, str], dp: str) -> str:
    current = states.get(dp, DETACHED)
    if current == DETACHED:
        raise Illegal_transition(DETACHED, activated("RW"))
    return activated(mode_of(current) or "RW")


def after_deactivate(states: Dict[str, str], dp: str) -> str:
    current = states.get(dp, DETACHED)
    if is_activated(current):
        return attached(mode_of(current) or "RW")
    return current


def after_detach(states: Dict[str, str], dp: str) -> str:
    current = states.get(dp, DETACHED)
    if is_activated(current):
        raise Illegal_transition(current, DETACHED)
    return DETACHED
