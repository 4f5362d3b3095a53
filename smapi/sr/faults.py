"""Fault injection for crash tests: `SMAPI_FAULT=<op>.<step>` kills the process at that journaled step.

The engine calls :func:`fault_point` between the steps of every multi-step verb. In production the variable is
unset and a fault point costs one dictionary lookup; tests set it in a subprocess and then check that the next
attach or scan rolls the interrupted operation forward or back without losing data.
"""

from __future__ import annotations

import os

ENV = "SMAPI_FAULT"
#: exit status of a process killed by a fault point (what tests expect to see)
FAULT_EXIT_CODE = 9


def fault_point(name: str) -> None:
    """Exit at once (no cleanup, no flush of Python buffers) when `SMAPI_FAULT` names this step."""
    if os.environ.get(ENV) == name:
        os._exit(FAULT_EXIT_CODE)
