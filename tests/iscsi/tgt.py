"""A real tgtd for tests: private control socket and port on 127.0.0.1, targets made and removed with tgtadm.

tgtd runs in the foreground as a child of the test process (so it is reaped, and dies with it through
PR_SET_PDEATHSIG). `stop()` follows real-stacks §2.1: SIGTERM does not stop tgtd while targets exist, so the
system goes offline, every target is deleted, then the system, and the socket files are removed. `restart()`
brings the same targets, LUNs (same backing files, so the same data and SCSI ids) and accounts back on the
same port: what a target outage looks like to an initiator.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

SOCKET_DIR = "/var/run/tgtd"
IQN_PREFIX = "iqn.2026-11.org.smapi.test"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    tid: int
    iqn: str
    luns: Dict[int, str] = field(default_factory=dict)  # lun -> backing file
    users: List[str] = field(default_factory=list)
    outgoing: Optional[str] = None
    params: Dict[int, str] = field(default_factory=dict)


class TgtServer:
    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.cp = 0
        self.proc: Optional[subprocess.Popen] = None
        self.targets: Dict[int, Target] = {}
        self.accounts: Dict[str, str] = {}
        self._next_tid = 1

    @property
    def portal(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- process ----------------------------------------------------------------------------------------------
    def _free_cp(self) -> int:
        for _ in range(200):
            cp = random.randint(100, 999)  # tgtd refuses larger control port numbers
            if not os.path.exists(os.path.join(SOCKET_DIR, f"socket.{cp}")):
                return cp
        raise RuntimeError("no free tgtd control socket number")

    def tgtadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(["tgtadm", "-C", str(self.cp), *args], capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"tgtadm {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
        return r

    def start(self) -> TgtServer:
        os.makedirs(self.workdir, exist_ok=True)
        self.cp = self._free_cp()
        log = open(os.path.join(self.workdir, "tgtd.log"), "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(["tgtd", "-f", "-C", str(self.cp), "--iscsi", f"portal={self.portal}"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while self.tgtadm("--lld", "iscsi", "--mode", "target", "--op", "show", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tgtd did not start (see tgtd.log)")
            time.sleep(0.02)
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tgtd does not listen on {self.portal}")
            time.sleep(0.02)
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Shut tgtd down cleanly (its targets and accounts are kept here for `restart`)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.tgtadm("--op", "update", "--mode", "sys", "--name", "State", "-v", "offline", check=False)
            for tid in sorted(self.targets):
                self.tgtadm("--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", str(tid), "--force",
                            check=False)
            self.tgtadm("--op", "delete", "--mode", "system", check=False)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        for suffix in ("", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(SOCKET_DIR, f"socket.{self.cp}{suffix}"))

    def restart(self) -> None:
        self.start()
        for user, password in self.accounts.items():
            self.tgtadm("--lld", "iscsi", "--mode", "account", "--op", "new", "--user", user, "--password", password)
        for target in self.targets.values():
            self._configure(target)

    # -- configuration ------------------------------------------------------------------------------------------
    def _configure(self, t: Target) -> None:
        a = ("--lld", "iscsi")
        self.tgtadm(*a, "--mode", "target", "--op", "new", "--tid", str(t.tid), "--targetname", t.iqn)
        for lun, path in sorted(t.luns.items()):
            self._add_lun(t, lun, path)
        for user in t.users:
            self.tgtadm(*a, "--mode", "account", "--op", "bind", "--tid", str(t.tid), "--user", user)
        if t.outgoing:
            self.tgtadm(*a, "--mode", "account", "--op", "bind", "--tid", str(t.tid), "--user", t.outgoing,
                        "--outgoing")
        self.tgtadm(*a, "--mode", "target", "--op", "bind", "--tid", str(t.tid), "--initiator-address", "ALL")

    def _add_lun(self, t: Target, lun: int, path: str) -> None:
        self.tgtadm("--lld", "iscsi", "--mode", "logicalunit", "--op", "new", "--tid", str(t.tid), "--lun", str(lun),
                    "--backing-store", path)
        if lun in t.params:
            self.tgtadm("--lld", "iscsi", "--mode", "logicalunit", "--op", "update", "--tid", str(t.tid),
                        "--lun", str(lun), "--params", t.params[lun])

    def add_account(self, user: str, password: str) -> None:
        self.tgtadm("--lld", "iscsi", "--mode", "account", "--op", "new", "--user", user, "--password", password)
        self.accounts[user] = password

    def add_target(self, name: str, luns: List[Tuple[int, int]], *, chap: Optional[Tuple[str, str]] = None,
                   outgoing: Optional[Tuple[str, str]] = None) -> Target:
        """A target `<prefix>:<name>` with LUNs [(lun, size in bytes)] on sparse files in the work directory."""
        tid = self._next_tid
        self._next_tid += 1
        t = Target(tid, f"{IQN_PREFIX}:{name}")
        for lun, size in luns:
            path = os.path.join(self.workdir, f"t{tid}-lun{lun}.img")
            with open(path, "wb") as f:
                f.truncate(size)
            t.luns[lun] = path
            # a serial and an NAA id unique to this server, target and LUN (tgt's defaults repeat per tgtd)
            naa = f"6{self.port:05x}{tid:04x}{lun:04x}".ljust(16, "0")[:16]
            t.params[lun] = f"scsi_sn=smapi{self.port}t{tid}l{lun},scsi_id={naa}"
        for pair, attr in ((chap, "users"), (outgoing, "outgoing")):
            if pair is None:
                continue
            if pair[0] not in self.accounts:
                self.add_account(*pair)
            if attr == "users":
                t.users.append(pair[0])
            else:
                t.outgoing = pair[0]
        self.targets[tid] = t
        self._configure(t)
        return t

    def remove_target(self, t: Target) -> None:
        if self.running:
            self.tgtadm("--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", str(t.tid), "--force",
                        check=False)
        self.targets.pop(t.tid, None)
        for path in t.luns.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
