"""ctypes declarations of libsanlock.so.1 (the structures of sanlock.h and the calls smapi uses).

Why ctypes and not python3-sanlock: Debian builds that extension for its system python3 only (3.11 on Debian 12)
and it imports in a virtualenv only with /usr/lib/python3/dist-packages on sys.path, which would also pull every
other system package into the venv; it is not on PyPI. libsanlock1's C ABI is stable (the structures carry
padding "to add fields later without changing abi") and reachable from any Python >= 3.9 the project supports.

Loaded on first use, not at import: per-verb executables import the SR engine without needing sanlock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Optional

NAME_LEN = 48
PATH_LEN = 1024

# sanlk_resource.flags
RES_SHARED = 0x4
# sanlk_lockspace.flags / sanlk_host.flags
HOST_MASK = 0xF
HOST_UNKNOWN, HOST_FREE, HOST_LIVE, HOST_FAIL, HOST_DEAD = 1, 2, 3, 4, 5
# sanlock_acquire flags
ACQUIRE_OWNER_NOWAIT = 0x8
# sanlock_rem_lockspace flags
REM_UNUSED = 0x2


class Disk(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char * PATH_LEN), ("offset", ctypes.c_uint64),
                ("pad1", ctypes.c_uint32), ("pad2", ctypes.c_uint32)]


class Resource1(ctypes.Structure):
    """struct sanlk_resource followed by exactly one struct sanlk_disk (smapi's leases live on one disk)."""

    _fields_ = [("lockspace_name", ctypes.c_char * NAME_LEN), ("name", ctypes.c_char * NAME_LEN),
                ("lver", ctypes.c_uint64), ("data64", ctypes.c_uint64), ("data32", ctypes.c_uint32),
                ("unused", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("num_disks", ctypes.c_uint32),
                ("disk", Disk)]


class Lockspace(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * NAME_LEN), ("host_id", ctypes.c_uint64), ("flags", ctypes.c_uint32),
                ("host_id_disk", Disk)]


class Host(ctypes.Structure):
    _fields_ = [("host_id", ctypes.c_uint64), ("generation", ctypes.c_uint64), ("timestamp", ctypes.c_uint64),
                ("io_timeout", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class Options(ctypes.Structure):
    _fields_ = [("owner_name", ctypes.c_char * NAME_LEN), ("flags", ctypes.c_uint32), ("len", ctypes.c_uint32)]


_lib: Optional[ctypes.CDLL] = None
_libc: Optional[ctypes.CDLL] = None
_load_lock = threading.Lock()


def _declare(lib: ctypes.CDLL) -> None:
    p = ctypes.POINTER
    i, u32, u64 = ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64
    sigs = {
        "sanlock_write_lockspace": (p(Lockspace), i, u32, u32),
        "sanlock_write_resource": (p(Resource1), i, i, u32),
        "sanlock_add_lockspace_timeout": (p(Lockspace), u32, u32),
        "sanlock_inq_lockspace": (p(Lockspace), u32),
        "sanlock_rem_lockspace": (p(Lockspace), u32),
        "sanlock_get_hosts": (ctypes.c_char_p, u64, p(p(Host)), p(i), u32),
        "sanlock_get_lockspaces": (p(p(Lockspace)), p(i), u32),
        "sanlock_read_resource": (p(Resource1), u32),
        "sanlock_read_resource_owners": (p(Resource1), u32, p(p(Host)), p(i)),
        "sanlock_register": (),
        "sanlock_acquire": (i, i, u32, i, p(p(Resource1)), p(Options)),
        "sanlock_release": (i, i, u32, i, p(p(Resource1))),
        "sanlock_inquire": (i, i, u32, p(i), p(ctypes.c_void_p)),
        "sanlock_strerror": (i,),
    }
    for name, args in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = list(args)
        fn.restype = ctypes.c_char_p if name == "sanlock_strerror" else ctypes.c_int


def lib() -> ctypes.CDLL:
    """libsanlock.so.1, loaded once; OSError (with the package to install) when it is missing."""
    global _lib, _libc
    with _load_lock:
        if _lib is None:
            name = ctypes.util.find_library("sanlock") or "libsanlock.so.1"
            try:
                loaded = ctypes.CDLL(name, use_errno=True)
            except OSError as e:
                raise OSError(f"libsanlock is not installed (apt-get install libsanlock1 sanlock): {e}") from e
            _declare(loaded)
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.free.argtypes = [ctypes.c_void_p]
            _lib = loaded
        return _lib


def free(ptr: ctypes.c_void_p) -> None:
    """Free what libsanlock malloc'ed for us (the host arrays of get_hosts / read_resource_owners)."""
    lib()
    assert _libc is not None
    _libc.free(ptr)
