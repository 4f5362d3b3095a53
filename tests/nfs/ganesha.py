"""A real NFS server for tests: nfs-ganesha (VFS FSAL) started, polled until ready, restarted and torn down.

Two shapes, after the reference recipes:

* ``GaneshaServer("4")``: NFSv4 only, on 127.0.0.1 and a free port, without rpcbind (ganesha logs that it cannot
  register and carries on).
* ``GaneshaServer("3")``: NFSv3 + v4 with rpcbind, inside a private network namespace. NFSv3 needs a portmapper
  on port 111 and rpcbind's unix socket lives in /run, so both are confined: rpcbind runs under ``unshare -n -m``
  with a tmpfs on /run, and ganesha joins its network and mount namespaces. The namespace is anonymous: it lives
  exactly as long as the processes inside it, so a crashed test run cannot leave one behind (no ``ip netns``
  bind mount to forget). Clients reach it through ``nsenter --net=<netns>`` (``SMAPI_NFS_NETNS``).

Every process is a child of the test process with PR_SET_PDEATHSIG, so even a killed pytest takes its servers
with it. Nothing here depends on pytest.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import List, Optional

READY_TIMEOUT = 15.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: Optional[subprocess.Popen], *, grace: float = 5.0, kill: bool = False) -> None:
    """End one child by its pid and reap it (SIGTERM, then SIGKILL after `grace`)."""
    if proc is None or proc.poll() is not None:
        if proc is not None:
            proc.wait()
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerError(RuntimeError):
    pass


def _ppid_and_cmd(pid: int) -> tuple:
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return ppid, f.read().split(b"\0")
    except (OSError, IndexError, ValueError):
        return 0, []


def reap_orphans() -> List[int]:
    """Kill servers a killed test run left behind (PR_SET_PDEATHSIG does not survive their credential changes).

    Only orphans (parent pid 1) are touched: a ganesha whose config lives in one of our work directories, and an
    rpcbind in a network namespace other than ours. Live runs keep their servers as children, so they are safe.
    """
    killed = []
    own_netns = os.readlink("/proc/self/ns/net")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        ppid, cmd = _ppid_and_cmd(pid)
        if ppid != 1 or not cmd:
            continue
        exe = os.path.basename(cmd[0]).decode(errors="replace")
        ours = exe == "ganesha.nfsd" and any(b"/ganesha-v" in arg and arg.endswith(b".conf") for arg in cmd)
        if exe == "rpcbind":
            with contextlib.suppress(OSError):
                ours = os.readlink(f"/proc/{pid}/ns/net") != own_netns
        if ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


class GaneshaServer:
    """One ganesha exporting one directory. `version` is "4" (loopback) or "3" (v3+v4 in a private netns)."""

    def __init__(self, version: str = "4", workdir: Optional[str] = None) -> None:
        if version not in ("3", "4"):
            raise ValueError(f"unsupported server shape {version!r}")
        self.version = version
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix=f"ganesha-v{version}-")
        #: the exported directory as the host sees it (tests checksum files here directly)
        self.export_dir = os.path.join(self.workdir, "export")
        self.recov_dir = os.path.join(self.workdir, "recov")
        self.conf = os.path.join(self.workdir, "ganesha.conf")
        self.log = os.path.join(self.workdir, "ganesha.log")
        self.host = "127.0.0.1"
        self.port = 2049 if version == "3" else free_port()
        self._ganesha: Optional[subprocess.Popen] = None
        self._rpcbind: Optional[subprocess.Popen] = None
        os.makedirs(self.export_dir, exist_ok=True)
        os.makedirs(self.recov_dir, exist_ok=True)

    # -- what clients need ---------------------------------------------------------------------------------
    @property
    def serverpath(self) -> str:
        """The path clients mount: the v4 pseudo path on the loopback server, the real path (= pseudo) for v3."""
        return "/export" if self.version == "4" else self.export_dir

    @property
    def netns(self) -> Optional[str]:
        """The network namespace clients must enter (None: the host's own network)."""
        if self._rpcbind is None or self._rpcbind.poll() is not None:
            return None
        return f"/proc/{self._rpcbind.pid}/ns/net"

    def client_env(self) -> dict:
        """Environment for the driver: where to reach this server's network."""
        return {"SMAPI_NFS_NETNS": self.netns} if self.netns else {}

    def in_netns(self, argv: List[str]) -> List[str]:
        return ["nsenter", f"--net={self.netns}", *argv] if self.netns else list(argv)

    @property
    def running(self) -> bool:
        return self._ganesha is not None and self._ganesha.poll() is None

    # -- configuration -------------------------------------------------------------------------------------
    def config_text(self) -> str:
        if self.version == "4":
            # Bind_addr keeps a v4 test server off every other interface.
            core = (f"Protocols = 4; NFS_Port = {self.port}; Bind_addr = 127.0.0.1; "
                    "Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false;")
            protocols, pseudo = "4", "/export"
        else:
            # No Bind_addr inside the namespace: getaddrinfo's AI_ADDRCONFIG fails on an lo-only namespace.
            core = ("Protocols = 3, 4; NFS_Port = 2049; MNT_Port = 20048; "
                    "Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false;")
            protocols, pseudo = "3, 4", self.export_dir
        return (
            f"NFS_CORE_PARAM {{ {core} }}\n"
            f"NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {self.recov_dir}; "
            "Allow_Numeric_Owners = true; Only_Numeric_Owners = true; }\n"
            "NFS_KRB5 { Active_krb5 = false; }\n"
            f"EXPORT {{ Export_Id = 1; Path = {self.export_dir}; Pseudo = {pseudo}; Access_Type = RW; "
            f"Squash = No_Root_Squash; Protocols = {protocols}; Transports = TCP; SecType = sys; "
            "FSAL { Name = VFS; } }\n"
            "LOG { Default_Log_Level = EVENT; }\n"
        )

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> GaneshaServer:
        reap_orphans()
        try:
            if self.version == "3" and self.netns is None:
                self._start_rpcbind()
            self._start_ganesha()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, argv: List[str], log: str) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent, cwd=self.workdir)

    def _start_rpcbind(self) -> None:
        script = ("ip link set lo up && mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && "
                  "chown _rpc /run/rpcbind && exec rpcbind -f -w")
        self._rpcbind = self._spawn(["unshare", "--net", "--mount", "--propagation", "private",
                                     "sh", "-c", script], os.path.join(self.workdir, "rpcbind.log"))
        self._wait(lambda: self._rpcinfo() is not None, self._rpcbind, "rpcbind")

    def _start_ganesha(self) -> None:
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        argv = ["ganesha.nfsd", "-F", "-f", self.conf, "-L", self.log, "-p", os.path.join(self.workdir, "pid")]
        if self.version == "3":
            # Its mount namespace too: ganesha then registers through the private /run/rpcbind.sock.
            pid = self._rpcbind.pid  # type: ignore[union-attr]
            argv = ["nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt", *argv]
        self._ganesha = self._spawn(argv, os.path.join(self.workdir, "ganesha.out"))
        self._wait(self._ready, self._ganesha, "ganesha")

    def _rpcinfo(self) -> Optional[str]:
        r = subprocess.run(self.in_netns(["rpcinfo", "-p", "127.0.0.1"]), capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    def _ready(self) -> bool:
        if self.version == "3":
            out = self._rpcinfo() or ""
            if "mountd" not in out or "nfs" not in out:
                return False
        return self._tcp_open()

    def _tcp_open(self) -> bool:
        if self.version == "3":
            # The port is inside the namespace; rpcinfo answering with mountd means ganesha's listeners are up.
            return True
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
            return True
        return False

    def _wait(self, ready, proc: subprocess.Popen, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(f"{what} exited with {proc.returncode}: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.03)
        raise ServerError(f"{what} not ready after {READY_TIMEOUT}s: {self.log_tail()}")

    def stop_server(self, *, kill: bool = False) -> None:
        """Stop ganesha only (the namespace and rpcbind stay): the 'server went away' of failure tests."""
        _stop(self._ganesha, kill=kill)
        self._ganesha = None

    def restart(self) -> None:
        self.stop_server()
        self._start_ganesha()

    def stop(self) -> None:
        """Stop everything this server started; safe to call twice and after a failed start."""
        self.stop_server()
        _stop(self._rpcbind)
        self._rpcbind = None

    def destroy(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 8) -> str:
        out: List[str] = []
        for name in ("ganesha.out", "ganesha.log", "rpcbind.log"):
            path = os.path.join(self.workdir, name)
            with contextlib.suppress(OSError), open(path, errors="replace") as f:
                # dbus/krb5/RADOS complaints are expected noise on a test machine
                out += [ln.rstrip() for ln in f if not any(k in ln for k in ("dbus", "krb5", "RADOS", "KRB5"))]
        return " | ".join(out[-lines:])

    def __enter__(self) -> GaneshaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
