"""Typed calls to the sanlock daemon (the one `SANLOCK_RUN_DIR` names, else the system's /run/sanlock).

sanlock gives three things smapi builds its pool on:

* a *lockspace* (delta leases): one slot per host id (1..MAX_HOSTS here) in an area of the shared storage; a
  host that has joined renews its slot every few seconds, so every other host sees it live, failing or dead;
* *resources* (Paxos leases) in that lockspace, held exclusively or shared by a process registered with the
  daemon, with a version (`lver`) that grows at every exclusive acquisition: the fencing token;
* self-fencing: when the daemon cannot renew its host's slot, it kills every process holding a resource of that
  lockspace before other hosts may take them (after expiry).

Leases live in an `Area`: a file (offset 0, or a byte offset in it) or a block device at a byte offset.
Resources need 1 MiB each at 512-byte sectors, a lockspace 1 MiB.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from smapi.sr.sanlock import _lib

#: bytes one lockspace or one resource occupies (512-byte sectors, 2000 hosts: sanlock's default alignment)
LEASE_SIZE = 1 << 20
#: host ids of a pool (a XenServer pool's maximum size), and the hosts every resource lease is formatted for: each
#: phase of a Paxos ballot reads roundup_pow2(num_hosts + 2) sectors, so 64 hosts read 64 KiB where sanlock's
#: default (2000) reads 1 MiB, O_DIRECT through the NFS client, twice per acquisition. (A lockspace keeps
#: sanlock's default size: a host renews only its own slot.)
MAX_HOSTS = 64
IO_TIMEOUT_ENV = "SMAPI_SANLOCK_IO_TIMEOUT"
#: sanlock's default; a lockspace's hosts count as dead 8 x io_timeout + 60 s after their last renewal
DEFAULT_IO_TIMEOUT = 10

# return values meaning "another host or process holds it" (sanlock_rv.h and -EAGAIN/-EBUSY)
_BUSY = {-errno.EAGAIN, -errno.EBUSY, -243, -244, -245, -246, -247}
#: add_lockspace: another host wrote the host id's delta lease while this one was acquiring it (SANLK_HOSTID_BUSY)
HOSTID_BUSY = -262
#: read_resource: no resource lease was ever formatted there (SANLK_LEADER_MAGIC), or it was cleared
_UNFORMATTED = {-223, -224}


def io_timeout() -> int:
    return int(os.environ.get(IO_TIMEOUT_ENV) or DEFAULT_IO_TIMEOUT)


class Area(NamedTuple):
    """Where a lease lives: a file or a device, at a byte offset (a multiple of LEASE_SIZE)."""

    path: str
    offset: int = 0


class HostState(NamedTuple):
    host_id: int
    generation: int
    timestamp: int
    state: str  # "unknown", "free", "live", "fail", "dead"


class Owners(NamedTuple):
    lver: int
    shared: bool
    hosts: List[HostState]


class SanlockError(Exception):
    """A sanlock call failed: `rv` is its negative return value (an -errno or a SANLK_ code)."""

    def __init__(self, call: str, rv: int, what: str) -> None:
        super().__init__(f"sanlock {call} {what}: {describe(rv)} ({rv})")
        self.call = call
        self.rv = rv

    @property
    def busy(self) -> bool:
        return self.rv in _BUSY


def describe(rv: int) -> str:
    if -200 >= rv > -300:
        text = _lib.lib().sanlock_strerror(rv)
        return text.decode(errors="replace") if text else "sanlock error"
    return os.strerror(-rv) if rv < 0 else "ok"


def _check(call: str, rv: int, what: str) -> int:
    if rv < 0:
        raise SanlockError(call, rv, what)
    return rv


def _name(text: str) -> bytes:
    raw = text.encode()
    if not raw or len(raw) >= _lib.NAME_LEN:
        raise ValueError(f"sanlock name {text!r} must be 1..{_lib.NAME_LEN - 1} bytes")
    return raw


def _disk(area: Area) -> _lib.Disk:
    path = area.path.encode()
    if len(path) >= _lib.PATH_LEN:
        raise ValueError(f"lease path longer than {_lib.PATH_LEN - 1} bytes: {area.path}")
    return _lib.Disk(path=path, offset=area.offset)


def _lockspace(name: str, area: Area, host_id: int = 0) -> _lib.Lockspace:
    return _lib.Lockspace(name=_name(name), host_id=host_id, flags=0, host_id_disk=_disk(area))


def _resource(lockspace: str, name: str, area: Area, *, shared: bool = False) -> _lib.Resource1:
    return _lib.Resource1(lockspace_name=_name(lockspace), name=_name(name), flags=_lib.RES_SHARED if shared else 0,
                          num_disks=1, disk=_disk(area))


# -- initialising lease areas (no daemon needed beyond the call) -------------------------------------------------
def write_lockspace(name: str, area: Area) -> None:
    """Format a lockspace (all host slots free) at `area`; the file must exist and be LEASE_SIZE long."""
    ls = _lockspace(name, area)
    _check("write_lockspace", _lib.lib().sanlock_write_lockspace(ctypes.byref(ls), 0, 0, io_timeout()),
           f"{name} at {area}")


def write_resource(lockspace: str, name: str, area: Area) -> None:
    """Format a free resource lease at `area` (erases whatever lease was there: only when nobody can hold it)."""
    res = _resource(lockspace, name, area)
    rv = _lib.lib().sanlock_write_resource(ctypes.byref(res), MAX_HOSTS, MAX_HOSTS, 0)
    _check("write_resource", rv, f"{name} at {area}")


# -- host ids: joining and leaving a lockspace -------------------------------------------------------------------
def add_lockspace(name: str, host_id: int, area: Area) -> None:
    """Join the lockspace as `host_id` (blocks until joined: a few io_timeouts). Joined already is no error."""
    ls = _lockspace(name, area, host_id)
    rv = _lib.lib().sanlock_add_lockspace_timeout(ctypes.byref(ls), 0, io_timeout())
    if rv != -errno.EEXIST:
        _check("add_lockspace", rv, f"{name} as host {host_id} at {area}")


def rem_lockspace(name: str, host_id: int, area: Area) -> None:
    """Leave the lockspace (the daemon first kills any process still holding one of its resources)."""
    ls = _lockspace(name, area, host_id)
    rv = _lib.lib().sanlock_rem_lockspace(ctypes.byref(ls), 0)
    if rv != -errno.ENOENT:
        _check("rem_lockspace", rv, f"{name} as host {host_id}")


def joined(name: str, host_id: int, area: Area) -> bool:
    ls = _lockspace(name, area, host_id)
    rv = _lib.lib().sanlock_inq_lockspace(ctypes.byref(ls), 0)
    if rv in (-errno.ENOENT, -errno.EINPROGRESS):
        return False
    _check("inq_lockspace", rv, name)
    return True


_STATES = {_lib.HOST_UNKNOWN: "unknown", _lib.HOST_FREE: "free", _lib.HOST_LIVE: "live", _lib.HOST_FAIL: "fail",
           _lib.HOST_DEAD: "dead"}


def _hosts_from(array: ctypes._Pointer, count: int) -> List[HostState]:
    out = []
    for i in range(count):
        h = array[i]
        out.append(HostState(int(h.host_id), int(h.generation), int(h.timestamp),
                             _STATES.get(h.flags & _lib.HOST_MASK, "unknown")))
    return out


def hosts(lockspace: str) -> List[HostState]:
    """Every host this daemon has seen in the lockspace (it must have joined it), with its liveness."""
    array = ctypes.POINTER(_lib.Host)()
    count = ctypes.c_int(0)
    deadline = time.monotonic() + 2 * io_timeout()
    while True:
        rv = _lib.lib().sanlock_get_hosts(_name(lockspace), 0, ctypes.byref(array), ctypes.byref(count), 0)
        # EAGAIN: just joined, the daemon has not read the other hosts' slots yet
        if rv != -errno.EAGAIN or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    _check("get_hosts", rv, lockspace)
    try:
        return _hosts_from(array, count.value)
    finally:
        if array:
            _lib.free(ctypes.cast(array, ctypes.c_void_p))


def owners(lockspace: str, name: str, area: Area) -> Owners:
    """The lease's version and the hosts holding it, read from storage."""
    res = _resource(lockspace, name, area)
    array = ctypes.POINTER(_lib.Host)()
    count = ctypes.c_int(0)
    rv = _lib.lib().sanlock_read_resource_owners(ctypes.byref(res), 0, ctypes.byref(array), ctypes.byref(count))
    _check("read_resource_owners", rv, f"{name} at {area}")
    try:
        return Owners(int(res.lver), bool(res.flags & _lib.RES_SHARED), _hosts_from(array, count.value))
    finally:
        if array:
            _lib.free(ctypes.cast(array, ctypes.c_void_p))


# -- holding resources -------------------------------------------------------------------------------------------
_registrations: Dict[int, int] = {}
_register_lock = threading.Lock()


def registration() -> int:
    """This process's connection to the daemon (made once per process): resources acquired through it are
    released when the process exits, and the process is what the daemon kills when the host loses the lockspace."""
    with _register_lock:
        pid = os.getpid()
        fd = _registrations.get(pid)
        if fd is None:
            fd = _check("register", _lib.lib().sanlock_register(), "")
            _registrations.clear()  # a forked child must not use its parent's connection
            _registrations[pid] = fd
        return fd


def acquire(lockspace: str, name: str, area: Area, *, shared: bool = False, pid: Optional[int] = None,
            owner_name: str = "") -> None:
    """Take the lease for this process (or for `pid`, a process that registered itself), without waiting.

    SanlockError with `.busy` when another host holds it (or, exclusive, when any holder does).
    """
    res = _resource(lockspace, name, area, shared=shared)
    arr = (ctypes.POINTER(_lib.Resource1) * 1)(ctypes.pointer(res))
    opt = _lib.Options(owner_name=owner_name.encode()[: _lib.NAME_LEN - 1])
    sock, target = (registration(), -1) if pid is None else (-1, pid)
    rv = _lib.lib().sanlock_acquire(sock, target, _lib.ACQUIRE_OWNER_NOWAIT, 1, arr, ctypes.byref(opt))
    _check("acquire", rv, f"{'shared ' if shared else ''}{lockspace}:{name}")


def release(lockspace: str, name: str, area: Area, *, pid: Optional[int] = None) -> None:
    res = _resource(lockspace, name, area)
    arr = (ctypes.POINTER(_lib.Resource1) * 1)(ctypes.pointer(res))
    sock, target = (registration(), -1) if pid is None else (-1, pid)
    _check("release", _lib.lib().sanlock_release(sock, target, 0, 1, arr), f"{lockspace}:{name}")


def lease_version(lockspace: str, name: str, area: Area) -> int:
    """The lease's current version on storage (after an exclusive acquisition: the holder's fencing token)."""
    res = _resource(lockspace, name, area)
    _check("read_resource", _lib.lib().sanlock_read_resource(ctypes.byref(res), 0), f"{name} at {area}")
    return int(res.lver)


def read_resource(area: Area) -> Optional[Tuple[str, str, int]]:
    """(lockspace, resource name, lver) of the resource lease formatted at `area`, read from storage; None when
    no resource lease is there (never formatted, or cleared)."""
    res = _lib.Resource1(num_disks=1, disk=_disk(area))  # empty names: the daemon fills them in from disk
    rv = _lib.lib().sanlock_read_resource(ctypes.byref(res), 0)
    if rv in _UNFORMATTED:
        return None
    _check("read_resource", rv, f"at {area}")
    return res.lockspace_name.decode(errors="replace"), res.name.decode(errors="replace"), int(res.lver)


class HostSlot(NamedTuple):
    host_id: int
    timestamp: int  # 0: free (never used, or its host left the lockspace cleanly)
    owner: str  # the name of the daemon that last held it (its `-e` name, or a uuid it made up)


#: sanlock's on-disk delta lease (struct leader_record, little-endian), one per 512-byte sector by host id:
#: magic u32 at 0, owner_id u64 at 32, resource_name (the holder daemon's name) char[48] at 104, timestamp at 152
_DELTA_MAGIC = 0x12212010
_SECTOR = 512


def lockspace_slots(area: Area, count: int = MAX_HOSTS) -> List[HostSlot]:
    """The first `count` host slots of the lockspace at `area`, read from storage without joining it.

    What a host reads to choose a host id to try: sanlock's own acquisition of a delta lease (add_lockspace) is what
    makes the choice safe (it fails with HOSTID_BUSY when another host wrote the slot meanwhile), but it waits
    8 x io_timeout + 60 s before taking a slot whose timestamp is set, so a slot is only tried when it is free.
    Read with O_DIRECT: another host's daemon writes these sectors, and this host's page cache would not see it."""
    size = count * _SECTOR
    buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
    fd = os.open(area.path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECT", 0))
    try:
        got = os.preadv(fd, [buf], area.offset)
    finally:
        os.close(fd)
    data = bytes(buf[:got])
    buf.close()
    out = []
    for i in range(got // _SECTOR):
        sector = data[i * _SECTOR:(i + 1) * _SECTOR]
        (magic,) = struct.unpack_from("<I", sector, 0)
        if magic != _DELTA_MAGIC:
            out.append(HostSlot(i + 1, 0, ""))
            continue
        owner = sector[104:152].split(b"\0", 1)[0].decode(errors="replace")
        (timestamp,) = struct.unpack_from("<Q", sector, 152)
        out.append(HostSlot(i + 1, int(timestamp), owner))
    return out


def held_version(lockspace: str, name: str) -> Optional[int]:
    """The version of lease `name` as this process holds it, from the daemon's memory (no storage I/O); None when
    the daemon's answer does not name it (then read it from storage: `lease_version`)."""
    count = ctypes.c_int(0)
    state = ctypes.c_void_p()
    rv = _lib.lib().sanlock_inquire(registration(), -1, 0, ctypes.byref(count), ctypes.byref(state))
    _check("inquire", rv, f"{lockspace}:{name}")
    try:
        text = ctypes.string_at(state.value).decode(errors="replace") if state.value else ""
    finally:
        if state.value:
            _lib.free(state)
    # one "lockspace:name:path:offset[:path:offset...]:lver" per held resource, separated by spaces
    prefix = f"{lockspace}:{name}:"
    for item in text.split(" "):
        lver = item.rsplit(":", 1)[-1]
        if item.startswith(prefix) and lver.isdigit():
            return int(lver)
    return None


def live_hosts(lockspace: str) -> List[int]:
    return [h.host_id for h in hosts(lockspace) if h.state in ("live", "fail")]


def prepare_file(path: str, size: int = LEASE_SIZE) -> bool:
    """Create a lease file of `size` zero bytes if it does not exist; True when this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
    except FileExistsError:
        return False
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


__all__: Tuple[str, ...] = ("Area", "HostSlot", "HostState", "Owners", "SanlockError", "LEASE_SIZE", "MAX_HOSTS")
