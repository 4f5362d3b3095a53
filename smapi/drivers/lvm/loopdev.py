"""Loop devices over (sparse) files: the block devices tests build volume groups on, and the way to give a
single-segment LV a real device node without device-mapper ("pseudo-activation": a loop with offset/sizelimit).

Loop devices are machine-global: everything here detaches by device name, never by pattern.
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional


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
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise LoopError(f"losetup {path}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def detach(device: str) -> None:
    proc = subprocess.run(["losetup", "-d", device], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False)
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


def refresh_size(device: str) -> None:
    """Let the loop device see its file's new size (``losetup -c``) after the file grew."""
    subprocess.run(["losetup", "-c", device], capture_output=True, stdin=subprocess.DEVNULL, check=True)


class SparseLoop:
    """A sparse file of ``size`` bytes attached to a loop device; ``close()`` detaches and removes the file."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        with open(path, "wb") as f:
            f.truncate(size)
        try:
            self.device = attach(path)
        except Exception:
            os.unlink(path)
            raise

    def close(self) -> None:
        if self.device:
            detach(self.device)
            self.device = ""
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self) -> SparseLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
