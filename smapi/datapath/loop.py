"""Block devices for raw-file VDIs: a loop device over the file (``losetup``), behind a small interface.

Kernel-only versus userspace: a consumer that needs a *block device* (a kernel blkback, ``mkfs``) can only get one
from the kernel. For a raw file the loop driver gives it. For a VHD chain the bytes have to be assembled in
userspace, so the kernel would need a userspace-backed block device: the NBD client (``/dev/nbdN`` connected to the
nbdkit socket with ``nbd-client``) or ublk. Where a host has the ``nbd`` module, such devices could be offered as a
``BlockDevice`` implementation beside the socket; this host (and CI) has neither, so VHDs are offered only as the
NBD socket, which userspace consumers (qemu, libnbd, nbdcopy) open directly. :func:`kernel_nbd_available` says
which case a host is in.
"""

from __future__ import annotations

import os
import shutil
from typing import List, Optional, Protocol, Tuple

from smapi.common import commands

from .model import DatapathError


class BlockDevices(Protocol):
    """Turns a file into a block device and back."""

    def attach(self, path: str, *, readonly: bool, offset: int = 0, size: int = 0) -> str:
        """Return the device path (e.g. ``/dev/loop3``); ``offset``/``size`` (0: to the end) pick a region."""
        ...

    def detach(self, device: str) -> None: ...

    def backing_file(self, device: str) -> Optional[str]:
        """The file behind ``device``, or None if it is not attached (used to check a record before detaching)."""
        ...


class LoopDevices:
    """Loop devices through ``losetup`` (needs root and ``/dev/loop-control``)."""

    def __init__(self, losetup: Optional[str] = None) -> None:
        self.losetup = losetup or shutil.which("losetup") or "/usr/sbin/losetup"

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and os.path.exists("/dev/loop-control") and shutil.which("losetup") is not None

    def attach(self, path: str, *, readonly: bool, offset: int = 0, size: int = 0) -> str:
        cmd: List[str] = [self.losetup, "--find", "--show"]
        if readonly:
            cmd.append("--read-only")
        if offset:
            cmd += ["--offset", str(offset)]
        if size:
            cmd += ["--sizelimit", str(size)]
        cmd.append(os.path.abspath(path))
        res = _run(cmd)
        if res.returncode != 0:
            raise DatapathError(f"losetup {path}: {res.stderr.strip()}")
        return res.stdout.strip()

    def detach(self, device: str) -> None:
        res = _run([self.losetup, "--detach", device])
        if res.returncode != 0 and self.backing_file(device) is not None:
            raise DatapathError(f"losetup --detach {device}: {res.stderr.strip()}")

    def backing_file(self, device: str) -> Optional[str]:
        try:
            with open(f"/sys/block/{os.path.basename(device)}/loop/backing_file") as f:
                return f.read().strip()
        except OSError:
            return None

    @staticmethod
    def region(device: str) -> Optional[Tuple[int, int]]:
        """(offset, sizelimit) of an attached loop device, None if it is not attached."""
        base = f"/sys/block/{os.path.basename(device)}/loop/"
        try:
            with open(base + "offset") as f, open(base + "sizelimit") as g:
                return int(f.read().strip()), int(g.read().strip())
        except (OSError, ValueError):
            return None


def kernel_nbd_available() -> bool:
    """True where the kernel NBD client exists (``/dev/nbd0`` or the module loaded); never the case in CI here."""
    return os.path.exists("/dev/nbd0") or os.path.isdir("/sys/module/nbd")


def _run(argv: List[str]) -> commands.CommandResult:
    """losetup, its exit status left to the caller; a missing or hanging losetup is a DatapathError."""
    try:
        return commands.run(argv, check=False)
    except commands.CommandError as e:
        raise DatapathError(str(e)) from None
