"""Choosing the initiator: `initiator()` picks the kernel or the userspace one (see `initiator.py`), and
`logout_any` logs a session out with whichever one made it.

Apart from `initiator.py` because both initiators import that module (their base class and session state).
"""

from __future__ import annotations

import os
from typing import Dict, Type

from smapi.drivers.iscsi.initiator import CLIENT_ENV, Initiator, read_state, remove_session_dir
from smapi.drivers.iscsi.kernel import KernelInitiator
from smapi.drivers.iscsi.userspace import UserspaceInitiator
from smapi.interface.errors import Backend_error


def _classes() -> Dict[str, Type[Initiator]]:
    return {"kernel": KernelInitiator, "userspace": UserspaceInitiator}


def initiator(kind: str = "") -> Initiator:
    """The initiator named `kind` (a session's recorded one), else the one this host should use."""
    classes = _classes()
    choice = kind or os.environ.get(CLIENT_ENV, "auto")
    if choice in classes:
        why = classes[choice].available()
        if why:
            raise Backend_error.classic("ISCSIInitiator", f"iSCSI initiator {choice!r} unusable here: {why}")
        return classes[choice]()
    if classes["kernel"].available() is None:
        return classes["kernel"]()
    why = classes["userspace"].available()
    if why:
        raise Backend_error.classic("ISCSIInitiator", f"no iSCSI initiator on this host: kernel: "
                                                      f"{classes['kernel'].available()}; userspace: {why}")
    return classes["userspace"]()


def logout_any(session_dir: str) -> None:
    """Log a session out with whichever initiator made it (nothing to do when there is no session)."""
    state = read_state(session_dir)
    if not state:
        remove_session_dir(session_dir)
        return
    initiator(state.get("initiator", "")).logout(session_dir)
