"""Mounting an NFS export behind one small interface: the kernel client where the host has one, FUSE otherwise.

`mounter()` picks: `SMAPI_NFS_CLIENT=kernel|fuse` forces one; by default the kernel client is used when the
kernel knows the nfs file system (`/proc/filesystems`) and mount.nfs is installed, else the userspace client
(`fusefs.py`: nfs-rs behind FUSE). Both give a real directory, so the SR engine never knows which one runs.

`SMAPI_NFS_NETNS=<path>` (tests) runs every client in that network namespace (`nsenter --net`), so a server
confined to a private namespace is reachable while the mount itself stays in the host's mount namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional

from smapi.common import commands
from smapi.drivers.nfs.config import NfsTarget
from smapi.interface.errors import Backend_error

if TYPE_CHECKING:
    import subprocess

CLIENT_ENV = "SMAPI_NFS_CLIENT"
NETNS_ENV = "SMAPI_NFS_NETNS"
#: python start-up and imports come on top of the NFS timeout when a FUSE daemon starts
STARTUP_SLACK = 15.0
#: an unmount waits this long for a server that does not answer, then falls back to a lazy unmount
UNMOUNT_TIMEOUT = 60.0


def in_netns(argv: List[str]) -> List[str]:
    netns = os.environ.get(NETNS_ENV)
    return ["nsenter", f"--net={netns}", *argv] if netns else list(argv)


def _unescape(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as octal
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_type(mountpoint: str) -> Optional[str]:
    """The file system type mounted exactly at `mountpoint`, or None."""
    want = os.path.realpath(mountpoint)
    found: Optional[str] = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and _unescape(fields[4]) == want:
                found = right.split()[0]  # the last entry wins: it is the mount on top
    return found


def is_mounted(mountpoint: str) -> bool:
    return mount_type(mountpoint) is not None


class Mounter:
    """How a host mounts `target.serverpath` on a directory and takes it away again."""

    name = "abstract"

    @classmethod
    def available(cls) -> Optional[str]:
        """None when usable on this host, else why not."""
        raise NotImplementedError

    def mount(self, target: NfsTarget, device_config: Dict[str, str], mountpoint: str) -> None:
        raise NotImplementedError

    def unmount(self, mountpoint: str) -> None:
        raise NotImplementedError


class KernelMounter(Mounter):
    name = "kernel"

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            with open("/proc/filesystems") as f:
                kinds = {line.split()[-1] for line in f if line.strip()}
        except OSError:
            kinds = set()
        if not kinds & {"nfs", "nfs4"}:
            return "the kernel has no nfs file system (no nfs module)"
        if shutil.which("mount.nfs") is None:
            return "mount.nfs is not installed (Debian: nfs-common)"
        return None

    def mount(self, target: NfsTarget, device_config: Dict[str, str], mountpoint: str) -> None:
        os.makedirs(mountpoint, exist_ok=True)
        if is_mounted(mountpoint):
            return
        argv = in_netns(["mount", "-t", "nfs", "-o", ",".join(target.kernel_options()), target.remote(), mountpoint])
        try:
            r = commands.run(argv, timeout=target.timeout * 3 + 5, check=False)
        except commands.CommandTimedOut:
            raise Backend_error.classic("NFSTarget", f"mount {target.remote()} timed out") from None
        if r.returncode != 0:
            raise kernel_mount_error(target, (r.stderr or r.stdout).strip())

    def unmount(self, mountpoint: str) -> None:
        if not is_mounted(mountpoint):
            return
        why = _try(["umount", mountpoint])
        if why:
            _try(["umount", "-l", mountpoint])
        if is_mounted(mountpoint):
            raise Backend_error.classic("NFSUnMount", f"{mountpoint}: {why}")


def kernel_mount_error(target: NfsTarget, message: str) -> Backend_error:
    low = message.lower()
    if "not supported" in low or "protocol" in low and "version" in low:
        return Backend_error.classic("NFSVersion", f"{target.remote()} (nfsversion {target.nfsversion}): {message}")
    if "no such file" in low or "access denied" in low or "not exported" in low:
        return Backend_error.classic("NFSMount", f"{target.remote()}: {message}")
    return Backend_error.classic("NFSTarget", f"{target.remote()}: {message}")


class FuseMounter(Mounter):
    """A `fusefs` daemon per mount: it outlives the verb that started it and exits at unmount."""

    name = "fuse"

    @classmethod
    def available(cls) -> Optional[str]:
        if not os.path.exists("/dev/fuse"):
            return "/dev/fuse is missing"
        if shutil.which("fusermount3") is None:
            return "fusermount3 is not installed (Debian: fuse3)"
        return None

    @staticmethod
    def _pidfile(mountpoint: str) -> str:
        return mountpoint.rstrip("/") + ".pid"

    def mount(self, target: NfsTarget, device_config: Dict[str, str], mountpoint: str) -> None:
        os.makedirs(mountpoint, exist_ok=True)
        if is_mounted(mountpoint):
            if _alive(mountpoint):
                return
            self.unmount(mountpoint)  # a daemon that died leaves a mount answering ENOTCONN
        read_end, write_end = os.pipe()
        argv = in_netns([sys.executable, "-m", "smapi.drivers.nfs.fusefs", "--status-fd", str(write_end),
                         json.dumps(device_config, sort_keys=True), mountpoint])
        log = open(mountpoint.rstrip("/") + ".log", "ab")  # noqa: SIM115 - handed to the daemon
        try:
            proc = commands.spawn(argv, stdout=log, stderr=log, pass_fds=(write_end,), cwd=None)
        finally:
            os.close(write_end)
            log.close()
        with open(self._pidfile(mountpoint), "w") as f:
            f.write(str(proc.pid))
        deadline = time.monotonic() + 2 * target.timeout + STARTUP_SLACK
        try:
            status = _read_status(read_end, deadline)
        finally:
            os.close(read_end)
        if status is None or "error" in status:
            _reap(proc, 5.0)
            if status is None:
                raise Backend_error.classic("NFSMount", f"{target.remote()}: mount helper failed: "
                                                        f"{_tail(mountpoint.rstrip('/') + '.log')}")
            raise Backend_error.classic(status["error"], status.get("detail", ""))
        while not is_mounted(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                _reap(proc, 5.0)
                raise Backend_error.classic("NFSMount", f"{target.remote()}: FUSE mount did not appear: "
                                                        f"{_tail(mountpoint.rstrip('/') + '.log')}")
            time.sleep(0.01)

    def unmount(self, mountpoint: str) -> None:
        pid = _read_pid(self._pidfile(mountpoint))
        if is_mounted(mountpoint) and _try(["fusermount3", "-u", mountpoint]):
            # Busy (a file still open): detach it from the tree now; the daemon ends when the last file closes.
            _try(["fusermount3", "-u", "-z", mountpoint])
        if pid is not None:
            _wait_pid(pid, 10.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._pidfile(mountpoint))
        if is_mounted(mountpoint):
            raise Backend_error.classic("NFSUnMount", f"{mountpoint} is still mounted")


def _alive(mountpoint: str) -> bool:
    try:
        os.stat(mountpoint)
        return True
    except OSError:
        return False


def _read_status(fd: int, deadline: float) -> Optional[Dict[str, str]]:
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {"error": "NFSTarget", "detail": "no answer from the NFS server before the timeout"}
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    return json.loads(data.decode().splitlines()[0])


def _read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _wait_pid(pid: int, timeout: float) -> None:
    """Wait for the daemon to exit (reaping it when it is our child); SIGTERM, then SIGKILL, when it lingers."""
    deadline = time.monotonic() + timeout
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.01)


def _gone(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
    except ChildProcessError:
        pass  # not our child: look at /proc
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def _try(argv: List[str]) -> str:
    """Run an unmount command: "" when it worked, else why not (a timeout counts as a failure, so the lazy unmount
    that follows still runs)."""
    try:
        commands.run(argv, timeout=UNMOUNT_TIMEOUT)
        return ""
    except commands.CommandError as e:
        return str(getattr(e, "stderr", "") or "").strip() or str(e)


def _reap(proc: subprocess.Popen, timeout: float) -> None:
    if not commands.wait(proc, timeout):
        proc.kill()
        proc.wait()


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.rstrip() for line in f.readlines()[-lines:])
    except OSError:
        return "(no log)"


MOUNTERS = {"kernel": KernelMounter, "fuse": FuseMounter}


def mounter() -> Mounter:
    choice = os.environ.get(CLIENT_ENV, "auto")
    if choice in MOUNTERS:
        cls = MOUNTERS[choice]
        why = cls.available()
        if why:
            raise Backend_error.classic("NFSMount", f"NFS client {choice!r} unusable here: {why}")
        return cls()
    if KernelMounter.available() is None:
        return KernelMounter()
    why = FuseMounter.available()
    if why:
        raise Backend_error.classic("NFSMount", f"no NFS client on this host: kernel: {KernelMounter.available()}; "
                                                f"userspace: {why}")
    return FuseMounter()
