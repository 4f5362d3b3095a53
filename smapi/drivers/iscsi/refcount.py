"""Which SRs share one target session: a per-(portal, IQN) holder list under the run directory, behind a lock.

The kernel initiator has one session per (portal, IQN) node, whatever number of SRs use LUNs of that target;
the first SR to detach must not log it out under the others. So each login adds its SR to the node's holders
and each logout removes it, and only the last one out logs the session out. The counting and the login/logout
it decides happen under one exclusive `flock` of the node's lock file, so two verbs (of different processes)
never both log in, nor log out a session another just joined.

Holders are SR names, not a number: a repeated attach of the same SR (attach is idempotent) counts once, and a
crashed verb's holder is replaced, not added to. The userspace initiator has no use for this: every SR gets its
own qemu-storage-daemon and thus its own session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from typing import Iterator, List

from smapi.common.files import atomic_write
from smapi.sr.runstate import run_dir


def _base() -> str:
    return os.path.join(run_dir(), "iscsi", "nodes")


def _key(portal: str, iqn: str) -> str:
    # A file name from anything a configuration may hold (IPv6 brackets, colons, long IQNs).
    return hashlib.sha256(f"{portal}\0{iqn}".encode()).hexdigest()[:32]


class Node:
    """The holders of one (portal, IQN) session; use inside `with node.locked():`."""

    def __init__(self, portal: str, iqn: str) -> None:
        self.portal, self.iqn = portal, iqn
        self.path = os.path.join(_base(), _key(portal, iqn) + ".json")

    @contextlib.contextmanager
    def locked(self) -> Iterator[Node]:
        os.makedirs(_base(), mode=0o700, exist_ok=True)
        fd = os.open(self.path[:-5] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)  # releases the lock

    def holders(self) -> List[str]:
        try:
            with open(self.path) as f:
                return list(json.load(f).get("holders", []))
        except (OSError, ValueError):
            return []

    def _write(self, holders: List[str]) -> None:
        if not holders:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        atomic_write(self.path, json.dumps({"portal": self.portal, "iqn": self.iqn, "holders": sorted(holders)}))

    def add(self, holder: str) -> bool:
        """Count `holder` in; True when no other holder has it (the session may need logging in)."""
        current = self.holders()
        if holder not in current:
            self._write(current + [holder])
        return not [h for h in current if h != holder]

    def remove(self, holder: str) -> bool:
        """Count `holder` out; True when nobody else holds the session (the caller logs it out)."""
        rest = [h for h in self.holders() if h != holder]
        self._write(rest)
        return not rest
