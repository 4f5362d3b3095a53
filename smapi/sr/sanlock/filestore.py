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
import time
import uuid as uuidlib
from typing import Callable, Dict, Optional

from smapi.sr.sanlock import client
from smapi.sr.sanlock.client import Area
from smapi.sr.sanlock.pool import LeaseStore

DIR_NAME = ".sanlock"


class NoFreeHostId(Exception):
    pass


class FileLeaseStore(LeaseStore):
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _publish(self, path: str, fill: Callable[[str], None]) -> None:
        """Make `path` exist with the content `fill` writes, exactly once whoever races for it."""
        if os.path.exists(path):
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.mkdir(path + ".init")
        except FileExistsError:
            _wait_for(path)
            return
        tmp = f"{path}.tmp-{uuidlib.uuid4().hex}"
        try:
            fill(tmp)
            os.rename(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

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
        return Area(path) if os.path.exists(path) else None

    def host_id(self, identity: str) -> int:
        hosts = os.path.join(self.directory, "hosts")
        os.makedirs(hosts, exist_ok=True)
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
