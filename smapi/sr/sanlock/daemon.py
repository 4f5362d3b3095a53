"""A private sanlock daemon for hosts without the system one (containers, tests simulating several hosts).

Each daemon has its own run directory (`SANLOCK_RUN_DIR`: socket, pid file) and host name; clients reach the
daemon whose run directory their environment names. A private daemon runs without a watchdog (`-w 0`): when its
host cannot renew a lease it still kills the lease holders, but nothing resets a host whose processes ignore it.
Real hosts use the system daemon with wdmd.

Where the sandbox lacks CAP_SYS_RESOURCE, the daemon's unconditional raise of RLIMIT_MEMLOCK/RTPRIO/CORE fails
with EPERM and it exits; an LD_PRELOAD shim (built with the C compiler into the run directory) makes those
three setrlimit calls succeed as no-ops. Where the capability exists, no shim is used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import Dict, Optional

RUN_DIR_ENV = "SANLOCK_RUN_DIR"
SYSTEM_RUN_DIR = "/run/sanlock"
CAP_SYS_RESOURCE = 24
_SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/resource.h>
/* sanlock raises these three to unlimited unconditionally; without CAP_SYS_RESOURCE that is EPERM. */
int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim) {
    int (*real)(__rlimit_resource_t, const struct rlimit *) = dlsym(RTLD_NEXT, "setrlimit");
    int rv = real(resource, rlim);
    if (rv < 0 && errno == EPERM &&
        (resource == RLIMIT_MEMLOCK || resource == RLIMIT_RTPRIO || resource == RLIMIT_CORE))
        return 0;
    return rv;
}
"""


class DaemonError(Exception):
    pass


#: daemons this process started, reaped when stopped (else they stay zombies of a long-lived test process)
_children: Dict[str, subprocess.Popen[bytes]] = {}


def run_dir() -> str:
    return os.environ.get(RUN_DIR_ENV) or SYSTEM_RUN_DIR


def socket_path(directory: str) -> str:
    return os.path.join(directory, "sanlock.sock")


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def _shim(directory: str) -> str:
    path = os.path.join(directory, "rlimit-shim.so")
    if os.path.exists(path):
        return path
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise DaemonError("this process lacks CAP_SYS_RESOURCE, so sanlock needs an rlimit shim, and no C compiler "
                          "(cc/gcc) is installed to build it; install gcc or run with CAP_SYS_RESOURCE")
    src = os.path.join(directory, "rlimit-shim.c")
    with open(src, "w") as f:
        f.write(_SHIM_SOURCE)
    r = subprocess.run([cc, "-shared", "-fPIC", "-o", path + ".tmp", src, "-ldl"], capture_output=True, text=True)
    if r.returncode != 0:
        raise DaemonError(f"building the rlimit shim failed: {r.stderr.strip()}")
    os.replace(path + ".tmp", path)
    return path


def answering(directory: str) -> bool:
    """True when a daemon listens on the socket of `directory`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path(directory))
        return True
    except OSError:
        return False
    finally:
        s.close()


def daemon_pid(directory: str) -> Optional[int]:
    try:
        with open(os.path.join(directory, "sanlock.pid")) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(directory: str, host_name: str = "", *, timeout: float = 10.0) -> int:
    """Start a daemon serving `directory` (idempotent); returns its pid. Its log is `<directory>/sanlock.log`."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    pid = daemon_pid(directory)
    if pid is not None and answering(directory):
        return pid
    binary = shutil.which("sanlock") or ("/usr/sbin/sanlock" if os.path.exists("/usr/sbin/sanlock") else None)
    if binary is None:
        raise DaemonError("sanlock is not installed (apt-get install sanlock)")
    env: Dict[str, str] = {**os.environ, RUN_DIR_ENV: directory}
    if not _has_cap_sys_resource():
        env["LD_PRELOAD"] = _shim(directory)
    name = host_name or os.path.basename(directory.rstrip("/")) or "smapi"
    cmd = [binary, "daemon", "-D", "-w", "0", "-l", "0", "-U", str(os.getuid()), "-G", str(os.getgid()),
           "-e", name[:47]]
    with open(os.path.join(directory, "sanlock.log"), "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while not answering(directory):
        if proc.poll() is not None:
            raise DaemonError(f"sanlock daemon exited with {proc.returncode}; see {directory}/sanlock.log")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise DaemonError(f"sanlock daemon did not answer on {socket_path(directory)} within {timeout:.0f}s")
        time.sleep(0.05)
    _children[directory] = proc
    return proc.pid


def stop(directory: str, *, timeout: float = 10.0) -> bool:
    """Stop the daemon of `directory` (force: it releases every lockspace); False when none ran."""
    directory = os.path.abspath(directory)
    pid = daemon_pid(directory)
    if pid is None:
        return False
    env = {**os.environ, RUN_DIR_ENV: directory}
    binary = shutil.which("sanlock") or "/usr/sbin/sanlock"
    # TimeoutExpired: the daemon is stuck on storage that went away; it is killed below
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run([binary, "shutdown", "-f", "1"], env=env, capture_output=True, timeout=timeout)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    child = _children.pop(directory, None)
    if child is not None:
        child.wait()
    for leftover in ("sanlock.sock", "sanlock.pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, leftover))
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
