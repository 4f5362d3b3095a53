"""One shared SR's sanlock leases: its lockspace (host liveness), host ids, and resource leases by name.

Where the leases live is a `LeaseStore` (files in the SR directory for NFS; a small LV at PV byte offsets for
LVM/iSCSI). `SrPool` joins and leaves the lockspace for this host and takes and gives back resources for this
process, counting nested and concurrent holds of one process (sanlock counts one hold per process).

Names: the lockspace is `smapi-<sr uuid>` (sanlock names are at most 47 bytes); resources are the engine's lock
names (`sr`, `gc`, `vdi-<uuid>`), shortened by hash when too long.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
import time
import uuid as uuidlib
from typing import Dict, List, Optional, Tuple

from smapi.sr.sanlock import client
from smapi.sr.sanlock.client import Area, SanlockError

HOST_ID_KEY = "host_id"
HOST_UUID_ENV = "SMAPI_HOST_UUID"


def sanlock_name(text: str, prefix: str = "") -> str:
    name = prefix + text
    if len(name.encode()) < 48:
        return name
    return prefix + hashlib.sha256(text.encode()).hexdigest()[: 47 - len(prefix)]


def host_uuid(run_dir: str) -> str:
    """This host's identity for host-id allocation: $SMAPI_HOST_UUID, else a uuid kept in the run directory."""
    fixed = os.environ.get(HOST_UUID_ENV)
    if fixed:
        return fixed
    path = os.path.join(run_dir, "host-uuid")
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        return f.read().strip()
    os.makedirs(run_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(str(uuidlib.uuid4()))
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)  # the first writer wins; everybody then reads the same id
    os.unlink(tmp)
    with open(path) as f:
        return f.read().strip()


class LeaseStore:
    """Where one SR's leases live, and the record of which host has which host id."""

    def lockspace_area(self, lockspace: str) -> Area:
        """The formatted lockspace (formatting it the first time, exactly once across hosts)."""
        raise NotImplementedError

    def resource_area(self, name: str, lockspace: str) -> Area:
        """The formatted lease of resource `name` (formatting it the first time, exactly once across hosts)."""
        raise NotImplementedError

    def existing_resource_area(self, name: str) -> Optional[Area]:
        """The lease of resource `name` if it was ever formatted, else None (nobody ever held it)."""
        raise NotImplementedError

    def host_id(self, identity: str) -> int:
        """The id (1..client.MAX_HOSTS) recorded for host `identity`, allocating a free one the first time."""
        raise NotImplementedError

    def host_names(self) -> Dict[int, str]:
        """Allocated ids and the hosts they belong to (for messages naming another host)."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop whatever this process caches about the store (called when joining the lockspace)."""


class _Hold:
    __slots__ = ("shared", "count", "lver", "area")

    def __init__(self, shared: bool, lver: int, area: Area) -> None:
        # the area is kept so that giving the lease back needs no file-system call (storage may be away then)
        self.shared, self.count, self.lver, self.area = shared, 1, lver, area


#: this process's holds, per (lockspace, resource)
_holds: Dict[Tuple[str, str], _Hold] = {}
_holds_lock = threading.Lock()
#: leases whose release failed (storage away): still held by this process in the daemon, given back later
_unreleased: Dict[Tuple[str, str], Area] = {}
_POLL_MIN, _POLL_MAX = 0.02, 0.25


class SrPool:
    def __init__(self, sr: str, store: LeaseStore, identity: str, host_id: Optional[int] = None) -> None:
        self.sr = sr
        self.store = store
        self.identity = identity
        self.lockspace = sanlock_name(sr, "smapi-")
        self._host_id = host_id

    # -- this host in the lockspace ------------------------------------------------------------------------------
    def host_id(self) -> int:
        if self._host_id is None:
            self._host_id = self.store.host_id(self.identity)
        return self._host_id

    def join(self) -> None:
        """SR.attach: join the lockspace (blocks a few io_timeouts the first time; joined already is a no-op)."""
        self.store.forget()
        area = self.store.lockspace_area(self.lockspace)
        if not client.joined(self.lockspace, self.host_id(), area):
            client.add_lockspace(self.lockspace, self.host_id(), area)

    def leave(self) -> None:
        """SR.detach: leave the lockspace. The daemon kills any process still holding one of its leases, so this
        process first gives back what it could not give back before."""
        self.retry_releases()
        client.rem_lockspace(self.lockspace, self.host_id(), self.store.lockspace_area(self.lockspace))

    def joined(self) -> bool:
        return client.joined(self.lockspace, self.host_id(), self.store.lockspace_area(self.lockspace))

    def other_live_hosts(self) -> List[int]:
        """Other hosts in the lockspace now. The daemon's view lags both ways, so it is read until it settles:

        * a host that just left shows live until the daemon rereads the lockspace (about 2 io_timeouts): hosts
          seen live are looked at again until then;
        * right after this host joined, the daemon has not yet seen the others renew (their state is "unknown"
          until it saw a timestamp change): it is asked again until it knows, and a host still unknown at the
          deadline counts as live (SR.destroy must not go ahead on a guess)."""
        deadline = time.monotonic() + 4 * client.io_timeout()
        while True:
            others = [h for h in client.hosts(self.lockspace) if h.host_id != self.host_id()]
            live = [h.host_id for h in others if h.state in ("live", "fail")]
            unknown = [h.host_id for h in others if h.state == "unknown"]
            if time.monotonic() > deadline:
                return sorted(live + unknown)
            if not live and not unknown:
                return []
            time.sleep(0.5)

    def host_name(self, host_id: int) -> str:
        who = self.store.host_names().get(host_id)
        return f"host id {host_id}" + (f" ({who})" if who else "")

    # -- resources held by this process --------------------------------------------------------------------------
    def take(self, resource: str, *, shared: bool = False, timeout: Optional[float] = None) -> bool:
        """Hold `resource` for this process (counted); waits while another host or process holds it.

        False when still busy at the timeout (`timeout=0`: one try)."""
        key = (self.lockspace, sanlock_name(resource))
        with _holds_lock:
            hold = _holds.get(key)
            if hold is not None:
                if hold.shared and not shared:
                    raise RuntimeError(f"cannot upgrade a shared hold of {resource} to exclusive")
                hold.count += 1
                return True
        self.retry_releases()
        area = self.store.resource_area(key[1], self.lockspace)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_MIN
        while True:
            try:
                client.acquire(self.lockspace, key[1], area, shared=shared, owner_name=self.identity[:47])
                break
            except SanlockError as e:
                if e.rv == -errno.EEXIST:
                    break  # this process still holds it: an earlier release failed (storage away)
                if not e.busy:
                    raise
            if deadline is not None and time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            pause = min(_POLL_MAX, pause * 1.5)
        with _holds_lock:
            _holds[key] = _Hold(shared, 0, area)  # the version is read when first asked for (one read fewer)
        return True

    def give(self, resource: str) -> None:
        key = (self.lockspace, sanlock_name(resource))
        with _holds_lock:
            hold = _holds[key]
            hold.count -= 1
            if hold.count > 0:
                return
            del _holds[key]
        try:
            client.release(self.lockspace, key[1], hold.area)
        except (SanlockError, OSError):
            with _holds_lock:
                _unreleased[key] = hold.area  # storage away: try again before the next take and before leaving

    def retry_releases(self) -> None:
        with _holds_lock:
            pending = [(k, a) for k, a in _unreleased.items() if k[0] == self.lockspace and k not in _holds]
        for key, area in pending:
            with contextlib.suppress(SanlockError, OSError):
                client.release(self.lockspace, key[1], area)
                with _holds_lock:
                    _unreleased.pop(key, None)

    def generation(self, resource: str) -> Optional[int]:
        """The version of `resource` this process holds exclusively (its fencing token), None when not held so."""
        key = (self.lockspace, sanlock_name(resource))
        with _holds_lock:
            hold = _holds.get(key)
            if hold is None or hold.shared:
                return None
            if hold.lver:
                return hold.lver
            area = hold.area
        # held by us: nobody can change it meanwhile; the daemon knows it (a storage read only if it does not say)
        lver = client.held_version(self.lockspace, key[1]) or client.lease_version(self.lockspace, key[1], area)
        with _holds_lock:
            hold.lver = lver
        return lver

    # -- leases held by another process of this host (a datapath server) ---------------------------------------
    def take_for(self, pid: int, resource: str, *, shared: bool, settle: float = 5.0) -> Optional[int]:
        """Take `resource` for process `pid` (registered with the daemon by itself: a datapath server); the lease
        is that process's until it exits. None when taken, else the id of another live host holding it.

        While only this host holds it (the server this one replaces is still exiting: the daemon frees its leases
        when it sees the connection close) it is tried again for `settle` seconds."""
        name = sanlock_name(resource)
        area = self.store.resource_area(name, self.lockspace)
        deadline = time.monotonic() + settle
        while True:
            try:
                client.acquire(self.lockspace, name, area, shared=shared, pid=pid, owner_name=self.identity[:47])
                return None
            except SanlockError as e:
                if not e.busy or time.monotonic() > deadline:
                    raise
            others = self._other_live_holders(name, area)
            if others:
                return others[0]
            time.sleep(0.05)

    def held_elsewhere(self, resource: str) -> Optional[int]:
        """Another live host holding `resource` (read from storage), else None; a lease never formatted is free."""
        name = sanlock_name(resource)
        area = self.store.existing_resource_area(name)
        if area is None:
            return None
        others = self._other_live_holders(name, area)
        return others[0] if others else None

    def _other_live_holders(self, name: str, area: Area) -> List[int]:
        # A dead host's leases are free to take (sanlock lets the next acquirer have them): not a holder.
        holders = [h.host_id for h in client.owners(self.lockspace, name, area).hosts if h.host_id != self.host_id()]
        if not holders:
            return []
        live = set(client.live_hosts(self.lockspace))
        return [h for h in holders if h in live]

    def holders(self, resource: str) -> List[int]:
        """Host ids holding `resource` now (read from storage)."""
        name = sanlock_name(resource)
        found = client.owners(self.lockspace, name, self.store.resource_area(name, self.lockspace))
        return [h.host_id for h in found.hosts]


#: key of the SR document recording the SR lease version it was written under
GENERATION_KEY = "lease_generation"


class Fenced(Exception):
    """This process's SR lease is older than the one the stored document was written under: it lost the lease
    (its host stalled past expiry and another host took it), so what it was about to write is stale."""


def stamp_generation(pool: SrPool, stored: Optional[Dict[str, object]], value: Dict[str, object]) -> Dict[str, object]:
    """`value` stamped with this process's SR lease version, or Fenced when the stored document is newer."""
    mine = pool.generation("sr")
    if mine is None:
        return dict(value)  # SR.create: nobody can hold a lease of an SR that does not exist yet
    theirs = int(str((stored or {}).get(GENERATION_KEY, 0)))
    if theirs > mine:
        raise Fenced(f"SR {pool.sr}: the SR document was written under lease version {theirs}, this process holds "
                     f"version {mine}; it lost the SR lease (a stall past expiry) and must not write")
    return {**value, GENERATION_KEY: mine}
