"""Leases as files in a directory of shared storage (NFS SRs: `<sr>/.sanlock/`).

    lockspace            the lockspace (1 MiB)
    leases/<name>        one resource lease per file (1 MiB, sparse)
    hosts/<id>/owner     host id `id` belongs to the host whose identity the file holds

Creating anything here is decided by MKDIR, atomic on the server (the userspace NFS client has no LINK and its
exclusive create is not atomic across clients): `hosts/<id>/` is the claim of a host id, `<file>.init/` the right
to format `<file>` once. The winner formats a temporary file and renames it into place, so a lease appears
complete or not at all and is never formatted twice (which would erase a holder's lease). Losers wait for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid as uuidlib
from typing import Callable, Dict, Optional

from smapi.sr.sanlock import client
from smapi.sr.sanlock.client import Area
from smapi.sr.sanlock.pool import LeaseStore

DIR_NAME = ".sanlock"


class NoFreeHostId(Exception):
    pass


#: Paths of this store known to exist, per process. Safe to remember: nothing here is ever removed while the SR
#: exists (a lease is formatted once and kept, even after its VDI is destroyed; SR.destroy removes the whole SR
#: directory, whose uuid is never reused). Each `os.path.exists` on the FUSE NFS client is a LOOKUP per path
#: component (no kernel caching there, for coherence): ~0.7 ms a lease, paid by every verb before this cache.
#: A stale entry could only make sanlock answer ENOENT: an error, never a lease silently not taken.
_existing: set = set()
_existing_lock = threading.Lock()


def _known(path: str) -> bool:
    with _existing_lock:
        return path in _existing


def _remember(path: str) -> None:
    with _existing_lock:
        _existing.add(path)


def _exists(path: str) -> bool:
    """os.path.exists, answered from memory once true (see `_existing`)."""
    if _known(path):
        return True
    if os.path.exists(path):
        _remember(path)
        return True
    return False


def _makedirs(path: str) -> None:
    if not _known(path):
        os.makedirs(path, exist_ok=True)
        _remember(path)


class FileLeaseStore(LeaseStore):
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def forget(self) -> None:
        """Drop what this process remembers of the store (SR.attach: an SR destroyed and made again under the same
        uuid, as tests do, is looked at afresh)."""
        prefix = self.directory.rstrip("/") + "/"
        with _existing_lock:
            _existing.difference_update({p for p in _existing if p.startswith(prefix) or p == self.directory})

    def _publish(self, path: str, fill: Callable[[str], None]) -> None:
        """Make `path` exist with the content `fill` writes, exactly once whoever races for it."""
        if _exists(path):
            return
        _makedirs(os.path.dirname(path))
        try:
            os.mkdir(path + ".init")
        except FileExistsError:
            _wait_for(path)
            _remember(path)
            return
        tmp = f"{path}.tmp-{uuidlib.uuid4().hex}"
        try:
            fill(tmp)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # (no unlink of `tmp` after a rename that worked: it is gone, and asking would cost a round trip)
        _remember(path)

    def lockspace_area(self, lockspace: str) -> Area:
        path = os.path.join(self.directory, "lockspace")

        def fill(tmp: str) -> None:
            client.prepare_file(tmp)
            client.write_lockspace(lockspace, Area(tmp))

        self._publish(path, fill)
        return Area(path)

    def resource_area(self, name: str, lockspace: str) -> Area:
        path = os.path.join(self.directory, "leases", name)

        def fill(tmp: str) -> None:
            client.prepare_file(tmp)
            client.write_resource(lockspace, name, Area(tmp))

        self._publish(path, fill)
        return Area(path)

    def existing_resource_area(self, name: str) -> Optional[Area]:
        path = os.path.join(self.directory, "leases", name)
        return Area(path) if _exists(path) else None

    def host_id(self, identity: str) -> int:
        hosts = os.path.join(self.directory, "hosts")
        _makedirs(hosts)
        for host_id, who in self.host_names().items():
            if who == identity:
                return host_id
        for host_id in range(1, client.MAX_HOSTS + 1):
            claim = os.path.join(hosts, str(host_id))
            try:
                os.mkdir(claim)
            except FileExistsError:
                continue
            tmp = os.path.join(claim, f"owner.tmp-{uuidlib.uuid4().hex}")
            _write(tmp, identity)
            os.rename(tmp, os.path.join(claim, "owner"))
            return host_id
        raise NoFreeHostId(f"all {client.MAX_HOSTS} host ids of {self.directory} are taken")

    def host_names(self) -> Dict[int, str]:
        hosts = os.path.join(self.directory, "hosts")
        found: Dict[int, str] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(hosts):
                if entry.isdigit():
                    with contextlib.suppress(OSError):  # claimed, not yet described: not ours anyway
                        found[int(entry)] = _read(os.path.join(hosts, entry, "owner"))
        return found


#: how long a loser waits for the winner to format a lease (a few io_timeouts of writes)
INIT_TIMEOUT = 60.0


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + INIT_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not formatted within {INIT_TIMEOUT:.0f}s by the process that claimed it "
                               f"({path}.init); if that process died, remove {path}.init")
        time.sleep(0.05)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
