"""Processes the datapath started, found again by pid from another process (through /proc).

A server is started detached so it outlives the short-lived verb process; whoever stops it later is usually not
its parent. Before signalling a recorded pid we check that it is still the program we started (pids are reused),
and a process that has exited but was not reaped yet (a zombie, waiting for its parent or for init) counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import List, Optional


def cmdline(pid: int) -> Optional[List[str]]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _state(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]  # the comm field may contain spaces and parentheses


def running(pid: int) -> bool:
    """True while the process exists and has not exited (zombies are not running)."""
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def matches(pid: int, program: str, marker: str) -> bool:
    """The pid runs ``program`` (basename of argv[0]) with ``marker`` among its arguments."""
    args = cmdline(pid)
    return args is not None and bool(args) and os.path.basename(args[0]) == program and marker in args[1:]


def terminate(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM, wait up to ``timeout`` for the exit, then SIGKILL (and wait again)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not running(pid):
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    # A child of this process (tests start helpers directly) is reaped here; others are their parent's business.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
