"""Host-local runtime files of the datapath: names, atomic JSON records, locks and the boot identity.

Everything here is rebuilt, never trusted across reboots: records carry the boot id they were written under, so a
record from an earlier boot is recognised as stale even when the run directory is not a tmpfs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

from smapi.common import files

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    """Identity of the current boot; changes at every host restart."""
    try:
        with open(_BOOT_ID) as f:
            return f.read().strip()
    except OSError:  # no procfs entry: fall back to the boot time, which is as unique per boot
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return "btime-" + line.split()[1]
    return "unknown"


def file_name(key: str) -> str:
    """A file name for an arbitrary VDI key: the key itself when it is tame, else a digest of it."""
    if _SAFE.match(key):
        return key
    return "h-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def ensure_dir(path: str) -> str:
    # Sockets live here: owner-only, so no other user can connect before the attach hands the URI out.
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def write_json(path: str, value: Dict[str, Any]) -> None:
    """Replace ``path`` atomically (smapi.common.files): a reader never sees half a record."""
    files.write_json(path, value)


def read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a torn record from a crash: treat it as absent, the caller rebuilds


def remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


@contextmanager
def locked(path: str) -> Iterator[None]:
    """Exclusive flock on ``path`` (created if needed); every per-verb call is its own process."""
    ensure_dir(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock
