"""Locks every host sharing an NFS SR agrees on: a host-local flock plus a lease directory on the export.

fcntl/flock locks do not cross a userspace (FUSE) NFS client, and NLM is off on the test servers, so the SR
engine's lock files would only exclude processes of one host. An `NfsLock` is two locks taken in order:

1. the engine's own `FileLock` on a host-local file (`<run>/locks/nfs/<sr>/<name>`): threads and processes of
   this host, shared or exclusive, re-entrant, exactly as on a file SR;
2. for exclusive holds, a *lease*: the directory `<sr>/.locks/<name>.lease` on the export. MKDIR is atomic on
   the server, so exactly one host creates it. Inside, `owner` says who holds it (host id, pid, token) and until
   when (`expires`, wall-clock seconds; renewed by a heartbeat thread while held).

A lease whose owner is past its expiry, or a same-host owner whose process is gone, is broken by renaming the
directory away (atomic: only one breaker wins) and removing it. Shared holds take no lease: a VDI is attached
read-write on one host at a time (the toolstack's rule), and every metadata change is exclusive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid as uuidlib
from typing import Any, Dict, Optional

from smapi.common.files import atomic_write
from smapi.sr.locks import DEFAULT_TIMEOUT, FileLock, LockTimeout
from smapi.sr.runstate import run_dir

TTL_ENV = "SMAPI_NFS_LEASE_TTL"
DEFAULT_TTL = 30.0
_POLL = 0.02


def lease_ttl() -> float:
    return float(os.environ.get(TTL_ENV) or DEFAULT_TTL)


def host_id() -> str:
    """This host's identity: a uuid kept in the run directory (a rebooted host, with a fresh run dir, is new)."""
    path = os.path.join(run_dir(), "host-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(run_dir(), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(str(uuidlib.uuid4()))
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)  # first writer wins; everybody then reads the same id
    os.unlink(tmp)
    with open(path) as f:
        return f.read().strip()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Lease:
    """The export-side half: one lease directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.token = ""
        # The heartbeat thread renews while the holder's thread may be giving the lease back: a renewal that
        # ran after the release would write its owner file into whatever lease directory exists by then.
        self._guard = threading.Lock()

    def _owner_file(self) -> str:
        return os.path.join(self.path, "owner")

    def _write_owner(self, *, fresh: bool = False) -> None:
        owner = {"host": host_id(), "pid": os.getpid(), "token": self.token, "expires": time.time() + lease_ttl()}
        # Into a fresh lease directly (a reader seeing it half-written judges by the directory's age, i.e. not
        # stale); a renewal replaces it atomically, since then the old content must stay readable.
        if fresh:
            with open(self._owner_file(), "w") as f:
                json.dump(owner, f)
        else:
            atomic_write(self._owner_file(), json.dumps(owner))

    def read_owner(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self._owner_file()) as f:
                return json.load(f)
        except (OSError, ValueError):
            # Besides "not there", the owner may be releasing or renewing right now: reading a file another
            # client unlinks or renames over gives ESTALE/EIO through the userspace NFS client. Either way the
            # owner is unknown at this instant, which callers treat as "held, not stale": they retry.
            return None

    def try_take(self) -> bool:
        try:
            os.mkdir(self.path)
        except FileExistsError:
            self._break_if_stale()
            return False
        self.token = uuidlib.uuid4().hex
        try:
            self._write_owner(fresh=True)
        except BaseException:
            # Ours but undescribed: everybody else would wait a whole TTL to break it by age. Give it back.
            self.token = ""
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return True

    def renew(self) -> bool:
        """Push the expiry forward; False when the lease is no longer ours (given back, or broken as stale)."""
        with self._guard:
            if not self.token:
                return False
            owner = self.read_owner()
            if owner is None or owner.get("token") != self.token:
                return False
            self._write_owner()
            return True

    def give_back(self) -> None:
        with self._guard:
            owner = self.read_owner()
            if owner is not None and owner.get("token") != self.token:
                return  # broken and retaken by someone else meanwhile: theirs now
            self.token = ""
            try:
                os.unlink(self._owner_file())
                os.rmdir(self.path)
            except OSError:
                shutil.rmtree(self.path, ignore_errors=True)  # a renewal's leftover temporary file, or gone

    def _stale(self) -> bool:
        owner = self.read_owner()
        if owner is None:
            # Taken but not yet described (or the taker died in between): judge by the directory's age.
            try:
                return time.time() - os.stat(self.path).st_mtime > lease_ttl()
            except OSError:  # gone, or being released right now (see read_owner)
                return False
        if float(owner.get("expires", 0)) < time.time():
            return True
        return owner.get("host") == host_id() and not _pid_alive(int(owner.get("pid", 0)))

    def _break_if_stale(self) -> None:
        if not self._stale():
            return
        graveyard = f"{self.path}.stale.{uuidlib.uuid4().hex}"
        try:
            os.rename(self.path, graveyard)
        except (FileNotFoundError, OSError):
            return  # another breaker (or the owner releasing) got there first
        shutil.rmtree(graveyard, ignore_errors=True)


class _Heartbeat:
    """One thread per process renewing every lease it holds, well before expiry."""

    def __init__(self) -> None:
        self._leases: Dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases[id(lease)] = lease
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="nfs-lease-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)

    def _run(self) -> None:
        while True:
            time.sleep(max(0.05, lease_ttl() / 3))
            with self._lock:
                leases = list(self._leases.values())
            for lease in leases:
                with contextlib.suppress(OSError):  # server away: the next beat tries again
                    lease.renew()


_heartbeat = _Heartbeat()
_holders = threading.local()


class NfsLock(FileLock):
    """Drop-in for the engine's FileLock (same acquire/release/hold/held), also exclusive across hosts."""

    def __init__(self, local_path: str, lease_path: str) -> None:
        super().__init__(local_path)
        self.lease_path = lease_path

    def _leases(self) -> Dict[str, Lease]:
        if not hasattr(_holders, "leases"):
            _holders.leases = {}
        return _holders.leases

    def acquire(self, *, exclusive: bool = True, timeout: Optional[float] = DEFAULT_TIMEOUT) -> bool:
        outermost = not self.held()
        start = time.monotonic()
        if not super().acquire(exclusive=exclusive, timeout=timeout):
            return False
        if not (outermost and exclusive):
            return True
        lease = Lease(self.lease_path)
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        try:
            taken = _take(lease, remaining)
        except BaseException:
            super().release()
            raise
        if not taken:
            super().release()
            if timeout == 0:
                return False
            raise LockTimeout(self.lease_path, timeout or 0)
        self._leases()[self.path] = lease
        _heartbeat.add(lease)
        return True

    def release(self) -> None:
        super().release()
        if self.held():
            return
        lease = self._leases().pop(self.path, None)
        if lease is not None:
            _heartbeat.remove(lease)
            with contextlib.suppress(OSError):  # server away: the lease expires by itself
                lease.give_back()


def _take(lease: Lease, timeout: Optional[float]) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if lease.try_take():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def nfs_lock(sr: str, name: str, lock_dir: str) -> NfsLock:
    local = os.path.join(run_dir(), "locks", "nfs", sr, name)
    return NfsLock(local, os.path.join(lock_dir, name + ".lease"))
