"""Loop devices over (sparse) files: the block devices tests build volume groups on, and the way to give a
single-segment LV a real device node without device-mapper ("pseudo-activation": a loop with offset/sizelimit).

Loop devices are machine-global and their numbers are reused: everything here detaches one device by name, never
by pattern, and a device is only acted on while it is still attached to the file it was made for (:func:`identity`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
import time
from typing import List, Optional, Tuple

from smapi.common import commands


class LoopError(RuntimeError):
    pass


def attach(path: str, *, offset: int = 0, sizelimit: int = 0, read_only: bool = False) -> str:
    """``losetup -f --show``: the new device's path."""
    argv = ["losetup", "-f", "--show"]
    if offset:
        argv += ["-o", str(offset)]
    if sizelimit:
        argv += ["--sizelimit", str(sizelimit)]
    if read_only:
        argv.append("-r")
    argv.append(path)
    proc = _losetup(argv)
    if proc.returncode != 0:
        raise LoopError(f"losetup {path}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def detach(device: str) -> None:
    proc = _losetup(["losetup", "-d", device])
    if proc.returncode != 0 and "No such device" not in proc.stderr:
        raise LoopError(f"losetup -d {device}: {proc.stderr.strip()}")


def backing_file(device: str) -> Optional[str]:
    """The file a loop device is attached to (None when it is free)."""
    name = os.path.basename(device)
    try:
        with open(f"/sys/block/{name}/loop/backing_file") as f:
            return f.read().strip()
    except OSError:
        return None


def backing_offset(device: str) -> int:
    """Where in its file a loop device starts (0 when unknown)."""
    try:
        with open(f"/sys/block/{os.path.basename(device)}/loop/offset") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def refresh_size(device: str) -> None:
    """Let the loop device see its file's new size (``losetup -c``) after the file grew."""
    proc = _losetup(["losetup", "-c", device])
    if proc.returncode != 0:
        raise LoopError(f"losetup -c {device}: {proc.stderr.strip()}")


def _losetup(argv: List[str]) -> commands.CommandResult:
    """Run losetup; its exit status is the caller's to judge. A missing losetup raises CommandNotFound."""
    try:
        return commands.run(argv, check=False)
    except commands.CommandTimedOut as e:
        raise LoopError(str(e)) from None


#: ioctl LOOP_GET_STATUS64 and the head of struct loop_info64 (lo_device, lo_inode: the backing file's identity)
LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64_SIZE = 232
_LOOP_INFO64_HEAD = struct.Struct("=QQ")

Identity = Tuple[int, int]  # (st_dev, st_ino) of a loop device's backing file


def identity(device: str) -> Optional[Identity]:
    """(st_dev, st_ino) of the file ``device`` is attached to, None when it is free (or no loop device).

    A device *name* says nothing about whose it is: loop numbers are reused as soon as they are free, by any
    process on the machine. The backing file's inode is what a device really stands for; paths of deleted files
    and reused numbers cannot fake it."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(_LOOP_INFO64_SIZE))
    except OSError:  # ENXIO: not bound
        return None
    finally:
        os.close(fd)
    dev, ino = _LOOP_INFO64_HEAD.unpack_from(buf)
    return int(dev), int(ino)


def file_identity(path: str) -> Identity:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def holders(device: str) -> List[str]:
    """Who keeps ``device`` open: processes with a descriptor on it (``pid:comm``) and block devices stacked on
    it (sysfs holders, or loop devices whose backing file is this device)."""
    out: List[str] = []
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        return out
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                out.append(f"pid {pid} ({comm}) fd {fd}")
                break
    name = os.path.basename(device)
    with contextlib.suppress(OSError):
        out += [f"block device {h}" for h in sorted(os.listdir(f"/sys/block/{name}/holders"))]
    for other in sorted(os.listdir("/sys/block")):
        if other != name and backing_file(f"/dev/{other}") == device:
            out.append(f"loop device /dev/{other} over it")
    return out


class SparseLoop:
    """A sparse file of ``size`` bytes attached to a loop device; ``close()`` detaches and removes the file.

    The device is identified by its backing file's inode, not by its name: ``close()`` (and the test factories'
    LVM cleanup, see :meth:`is_ours`) never act on a device number that has since gone to somebody else."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        with open(path, "wb") as f:
            f.truncate(size)
        self.file_id = file_identity(path)
        try:
            self.device = attach(path)
        except Exception:
            os.unlink(path)
            raise

    def is_ours(self) -> bool:
        """True while the device is still attached to our file."""
        return bool(self.device) and identity(self.device) == self.file_id

    def close(self, *, wait: float = 5.0) -> None:
        """Detach (only our own device), then remove the file. A device something still holds open is detached by
        the kernel at its last close (autoclear): that is a leak of the holder, reported as :class:`LoopError`
        (naming the holders) once ``wait`` seconds have not seen it go."""
        device, self.device = self.device, ""
        held: List[str] = []
        if device and identity(device) == self.file_id:
            detach(device)
            deadline = time.monotonic() + wait
            while identity(device) == self.file_id:
                if time.monotonic() >= deadline:
                    held = holders(device) or ["an unknown holder"]
                    break
                time.sleep(0.05)
        if os.path.exists(self.path):
            os.unlink(self.path)
        if held:
            raise LoopError(f"{device} ({self.path}) is still in use after losetup -d, by {'; '.join(held)}: "
                            "it is detached only when they close it")

    def __enter__(self) -> SparseLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
