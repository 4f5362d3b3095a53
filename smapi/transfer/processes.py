"""Starting, finding and stopping exposure server processes, by pid, never by name.

A pid from a state file is only signalled after /proc/<pid>/cmdline shows it is the daemon of that very record
handle, so a recycled pid is never hit. Children started by this process are kept as Popen objects and reaped
whenever the service runs (`reap`), so a long-lived service leaves no zombies.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Dict, Optional

from smapi.common import commands
from smapi.common.paths import package_root

if TYPE_CHECKING:
    import subprocess

DAEMON_MODULE = "smapi.transfer.daemon"
_children: Dict[int, subprocess.Popen] = {}


def spawn(handle: str, log_path: str) -> int:
    env = dict(os.environ)
    root = package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "ab") as log:
        # In a session of its own (commands.spawn): a Ctrl-C of the CLI leaves it running.
        proc = commands.spawn([sys.executable, "-m", DAEMON_MODULE, handle], stdout=log, stderr=log, env=env)
    _children[proc.pid] = proc
    return proc.pid


def reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def is_daemon_of(pid: int, handle: str) -> bool:
    if pid <= 0:
        return False
    proc = _children.get(pid)
    if proc is not None and isinstance(proc.args, list) and proc.args[-1] == handle:
        # Our own child: Popen knows. (/proc/<pid>/cmdline reads empty for a moment while exec sets up the
        # new image, which would make a starting server look gone.)
        return proc.poll() is None
    reap()
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return DAEMON_MODULE.encode() in args and handle.encode() in args


def alive(pid: int, handle: str) -> bool:
    if not is_daemon_of(pid, handle):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(pid: int, handle: str, timeout: float = 20.0) -> bool:
    """SIGTERM the daemon and wait for it to exit (SIGKILL after `timeout`); True if it was running."""
    if not alive(pid, handle):
        reap()
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _wait_child(pid, 0.05) or not alive(pid, handle):
            reap()
            return True
    if alive(pid, handle):
        os.kill(pid, signal.SIGKILL)
        _wait_child(pid, 5.0)
    reap()
    return True


def _wait_child(pid: int, timeout: float) -> bool:
    proc: Optional[subprocess.Popen] = _children.get(pid)
    if proc is None:
        time.sleep(timeout)
        return False
    return commands.wait(proc, timeout)
