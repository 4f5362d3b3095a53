"""The userspace initiator: the LUN as a local file through qemu-storage-daemon, and a loop device on that file.

No kernel iSCSI is needed (real-stacks §2.3): ``qemu-storage-daemon`` logs in with libiscsi (CHAP from a
secret file readable only by root and removed once the daemon has read it) and exports the LUN as one file
through FUSE; ``losetup`` turns that file into a block device LVM can use. The daemon is started in its own
session so it outlives the verb that logged in, and it is found again by pid and checked by its command line
(pids are reused) when the SR detaches, or when the next login finds a session a crash left behind.

Caveat: qemu does not verify the target's side of mutual CHAP; `discovery.resolve` does, with a libiscsi login
made just before, so a target with the wrong incoming secret is refused all the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from smapi.common import commands
from smapi.drivers.iscsi import discovery
from smapi.drivers.iscsi.config import IscsiTarget
from smapi.drivers.iscsi.initiator import Initiator, read_state, remove_session_dir, write_state
from smapi.drivers.iscsi.libiscsi import LunInfo
from smapi.drivers.lvm import loopdev
from smapi.interface.errors import Backend_error

if TYPE_CHECKING:
    import subprocess

PROGRAM = "qemu-storage-daemon"
#: what qemu's iscsi driver may take per request before it retries or reconnects
QEMU_TIMEOUT = 5
_children: Dict[int, subprocess.Popen] = {}


def qemu_opt(value: object) -> str:
    """A value inside qemu's key=value,... option syntax (a comma is written twice)."""
    return str(value).replace(",", ",,")


def mounted(path: str) -> bool:
    want = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(len(line.split()) > 4 and line.split()[4] == want for line in f)
    except OSError:
        return False


def _state(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def running(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def is_ours(pid: int, mountpoint: str) -> bool:
    """pid is a live qemu-storage-daemon exporting `mountpoint` (not a stranger that reused the pid)."""
    if pid <= 0 or not running(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return False
    return bool(args) and os.path.basename(args[0]) == PROGRAM and any(f"mountpoint={qemu_opt(mountpoint)}," in a
                                                                         for a in args)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM (qemu unmounts its FUSE export on the way out), SIGKILL if it lingers; reap our own child."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not running(pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    proc = _children.pop(pid, None)
    if proc is not None:
        commands.wait(proc, 5)


def loops_on(path: str) -> List[str]:
    """Every loop device whose backing file is `path` (a crash may have left one the state file never saw)."""
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/sys/block"):
            if name.startswith("loop") and loopdev.backing_file(f"/dev/{name}") == path:
                found.append(f"/dev/{name}")
    return sorted(found)


def release_loop(dev: str, backing: str, wait: float = 5.0) -> None:
    """Flush and detach a loop device, and wait for it to let go of the LUN's file.

    A holder of the device (a process that has not closed it yet) makes ``losetup -d`` only mark it for
    release at the last close; its dirty pages would then be written after the daemon is gone. So the device's
    page cache is flushed down to the target first, and the detach is waited for.
    """
    with contextlib.suppress(OSError):
        fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    loopdev.detach(dev)
    deadline = time.monotonic() + wait
    while loopdev.backing_file(dev) == backing and time.monotonic() < deadline:
        time.sleep(0.02)


def _tail(path: str, lines: int = 4) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(x.strip() for x in f.readlines()[-lines:] if x.strip())
    except OSError:
        return ""


def _qsd_error(target: IscsiTarget, log: str) -> Backend_error:
    text = _tail(log)
    low = text.lower()
    if "authentication" in low or "chap" in low:
        return Backend_error.classic("ISCSILogin", f"{target.where()}: {text}")
    if "not found" in low and "target" in low:
        return Backend_error.classic("ISCSIIQN", f"{target.where()}: {text}")
    if "connect" in low:
        return Backend_error.classic("ISCSITarget", f"{target.where()}: {text}")
    return Backend_error.classic("ISCSIDevice", f"{target.where()}: qemu-storage-daemon: {text or 'no output'}")


class UserspaceInitiator(Initiator):
    name = "userspace"

    @classmethod
    def available(cls) -> Optional[str]:
        if shutil.which(PROGRAM) is None:
            return f"{PROGRAM} is not installed (Debian: qemu-system-common, with qemu-block-extra)"
        if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
            return "FUSE is unavailable (/dev/fuse, fusermount3 from fuse3)"
        if os.geteuid() != 0 or not os.path.exists("/dev/loop-control"):
            return "loop devices need root and /dev/loop-control"
        return None

    @staticmethod
    def _paths(session_dir: str) -> Dict[str, str]:
        return {"mountpoint": os.path.join(session_dir, "lun"), "log": os.path.join(session_dir, "qsd.log"),
                "secret": os.path.join(session_dir, "chap.secret")}

    def device(self, session_dir: str) -> Optional[str]:
        state = read_state(session_dir)
        mnt = self._paths(session_dir)["mountpoint"]
        dev = state.get("device")
        if not dev or not is_ours(int(state.get("pid") or 0), mnt) or not mounted(mnt):
            return None
        return dev if loopdev.backing_file(dev) == mnt else None

    def login(self, target: IscsiTarget, lun: LunInfo, session_dir: str) -> str:
        dev = self.device(session_dir)
        if dev is not None:
            return dev
        self.logout(session_dir)  # whatever a crashed or half-made session left
        paths = self._paths(session_dir)
        os.makedirs(session_dir, mode=0o700, exist_ok=True)
        with open(paths["mountpoint"], "w"):
            pass  # the FUSE export mounts over a regular file
        state: Dict[str, Any] = {"initiator": self.name, "target": str(target.portal), "iqn": target.iqn,
                                 "lun": lun.lun, "scsi_id": lun.scsi_id}
        try:
            state["pid"] = self._start(target, lun, paths)
            write_state(session_dir, state)
            self._wait_mounted(target, state["pid"], paths)
            state["device"] = loopdev.attach(paths["mountpoint"])
            write_state(session_dir, state)
            return state["device"]
        except loopdev.LoopError as e:
            self.logout(session_dir)
            raise Backend_error.classic("ISCSIDevice", f"{target.where()}: {e}") from None
        except BaseException:
            self.logout(session_dir)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(paths["secret"])

    def _start(self, target: IscsiTarget, lun: LunInfo, paths: Dict[str, str]) -> int:
        iscsi = (f"driver=iscsi,node-name=lun,transport=tcp,portal={qemu_opt(target.portal)},"
                 f"target={qemu_opt(target.iqn)},lun={lun.lun},initiator-name={qemu_opt(discovery.initiator_name())},"
                 f"timeout={QEMU_TIMEOUT},cache.direct=on")
        argv = [PROGRAM]
        if target.chap.user:
            fd = os.open(paths["secret"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(target.chap.password)
            argv += ["--object", f"secret,id=chap,file={qemu_opt(paths['secret'])}"]
            iscsi += f",user={qemu_opt(target.chap.user)},password-secret=chap"
        export = f"type=fuse,id=export,node-name=raw,mountpoint={qemu_opt(paths['mountpoint'])},writable=on"
        argv += ["--blockdev", iscsi, "--blockdev", "driver=raw,node-name=raw,file=lun", "--export", export]
        with open(paths["log"], "ab") as log:
            proc = commands.spawn(argv, stdout=log, stderr=log)
        _children[proc.pid] = proc
        return proc.pid

    def _wait_mounted(self, target: IscsiTarget, pid: int, paths: Dict[str, str]) -> None:
        deadline = time.monotonic() + 2 * discovery.timeout() + 5
        while not mounted(paths["mountpoint"]):
            if not running(pid):
                raise _qsd_error(target, paths["log"])
            if time.monotonic() > deadline:
                raise Backend_error.classic("ISCSIDevice", f"{target.where()}: the LUN's FUSE export did not "
                                                           f"appear in time: {_tail(paths['log'])}")
            time.sleep(0.01)

    def logout(self, session_dir: str) -> None:
        state = read_state(session_dir)
        mnt = self._paths(session_dir)["mountpoint"]
        errors = []
        for dev in loops_on(mnt):
            try:
                release_loop(dev, mnt)
            except loopdev.LoopError as e:
                errors.append(str(e))
        pid = int(state.get("pid") or 0)
        if is_ours(pid, mnt) or pid in _children:
            stop_pid(pid)
        if mounted(mnt):  # the daemon died without unmounting (SIGKILL, crash): the mount answers ENOTCONN
            for argv in (["fusermount3", "-u", mnt], ["fusermount3", "-u", "-z", mnt], ["umount", "-l", mnt]):
                with contextlib.suppress(commands.CommandError):
                    if commands.run(argv, check=False).ok:
                        break
        if errors or mounted(mnt):
            raise Backend_error.classic("ISCSILogout", f"{session_dir}: {'; '.join(errors) or 'still mounted'}")
        remove_session_dir(session_dir)
