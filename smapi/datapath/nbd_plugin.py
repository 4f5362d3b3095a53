"""nbdkit Python plugin (API_VERSION 2): one VHD chain, or one raw file, served as a single raw disk.

Run by ``nbdkit python`` (see :mod:`smapi.datapath.nbd`), which embeds the *system* Python, not the project's
virtualenv; so this file imports nothing from smapi at load time and puts the package root on ``sys.path`` itself
(from ``smapi_root=`` or from its own location inside the package).

Parameters (``key=value`` after the script path)::

    image=PATH          the leaf VHD, or the raw file (required)
    kind=vhd|raw        default vhd
    resolver_dir=DIR    where parents are looked up (default: the leaf's directory)
    opener=MOD:FUNC     open the image through the driver's code instead of as a file (volumes that are no
                        files here, e.g. LVs without device-mapper); FUNC(args, writable=...) returns
                        (leaf Backing, ParentResolver or None); image= is then only a description
    opener_args=JSON    the opener's arguments (a JSON object)
    mode=rw|ro          ro opens the image read-only as well (nbdkit -r already refuses writes at the protocol)
    export=NAME         the export name clients ask for (the empty default name is accepted as well);
                        NAME@ro reaches the same disk read-only, whatever the mode
    smapi_root=DIR      the directory that contains the ``smapi`` package

One image handle is opened when the server gets ready and shared by every connection: the VHD metadata (BAT,
bitmaps) is cached in that object, so two handles on one leaf would overwrite each other's allocations. Requests
are serialised (nbdkit's default thread model for Python), which the chain needs anyway.

Writes are made durable on NBD flush or FUA, as the protocol allows: the VHD metadata commit (with its fdatasync
barriers) would otherwise run after every write. ``cleanup`` (nbdkit exit, also on SIGTERM) commits what is left.
"""

import errno
import os
import sys

import nbdkit  # provided by the embedding nbdkit

API_VERSION = 2

_ZERO_CHUNK = 1 << 20

_cfg = {"kind": "vhd", "mode": "rw"}
_disk = None  # the shared image object (_VhdDisk or _RawDisk)


# ------------------------------------------------------------------------------------------------ disks
class _VhdDisk:
    def __init__(self, image, resolver, writable, leaf=None):
        """``image`` is the leaf's path (parents found by ``resolver``), or None with ``leaf`` an open Backing
        that this disk then owns (the chain does not close backings it was handed)."""
        from smapi.vhd import open_chain

        self._leaf = leaf
        try:
            self.chain = open_chain(leaf if leaf is not None else image, resolver=resolver, writable=writable)
        except BaseException:
            if leaf is not None:
                leaf.close()
            raise
        self.writable = writable
        # Writes accumulate metadata in memory until flush/FUA; the batch keeps Chain.write from committing
        # (and so fdatasync-ing) on every request.
        self._batch = self.chain.batch() if writable else None
        if self._batch is not None:
            self._batch.__enter__()

    def size(self):
        return self.chain.size

    def readinto(self, buf, offset):
        self.chain.readinto(buf, offset)

    def write(self, buf, offset):
        self.chain.write(offset, buf)

    def flush(self):
        self.chain.flush()

    def reads_as_zero(self, offset, count):
        # No image of the chain maps the range, so it already reads as zeros (metadata only).
        return not self.chain.allocated(offset, count)

    def can_trim(self):
        return self.writable and self.chain.leaf.backing.can_punch()

    def trim(self, offset, count):
        from smapi.vhd.trim import trim

        trim(self.chain, offset, count)

    def extents(self, offset, count):
        bs = self.chain.block_size
        end = min(offset + count, self.chain.size)
        out: list = []
        pos = offset
        while pos < end:
            nxt = min(end, (pos // bs + 1) * bs)
            kind = 0 if self.chain.allocated(pos, nxt - pos) else nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO
            if out and out[-1][2] == kind:
                out[-1] = (out[-1][0], out[-1][1] + nxt - pos, kind)
            else:
                out.append((pos, nxt - pos, kind))
            pos = nxt
        return out

    def close(self):
        try:
            if self._batch is not None:
                self._batch.__exit__(None, None, None)  # commits pending metadata
                self._batch = None
        finally:
            try:
                self.chain.close()
            finally:
                if self._leaf is not None:
                    self._leaf.close()  # an opener's volume: may release resources (e.g. deflate a hidden LV)


class _RawDisk:
    def __init__(self, image, writable, backing=None):
        from smapi.vhd import FileBacking

        self.backing = backing if backing is not None else FileBacking(image, writable=writable)
        self.writable = writable

    def size(self):
        return self.backing.size()

    def readinto(self, buf, offset):
        n = self.backing.readinto(memoryview(buf), offset)
        if n != len(buf):
            raise OSError(errno.EIO, f"short read {n}/{len(buf)} at {offset}")

    def write(self, buf, offset):
        self.backing.pwrite(buf, offset)

    def flush(self):
        self.backing.flush()

    def reads_as_zero(self, offset, count):
        return False  # no allocation metadata to consult; write the zeros

    def can_trim(self):
        return self.writable and self.backing.can_punch()

    def trim(self, offset, count):
        from smapi.vhd.trim import whole_units

        lo, hi = whole_units(offset, min(offset + count, self.size()))
        if lo < hi:
            self.backing.punch_hole(lo, hi - lo)

    def extents(self, offset, count):
        return [(offset, count, 0)]

    def close(self):
        self.backing.close()


# ------------------------------------------------------------------------------------------------ lifecycle
def _package_root():
    """.../smapi/datapath/nbd_plugin.py -> the directory holding ``smapi``.

    The embedding sets neither ``__file__`` nor ``sys.argv``; the code object still knows the script's path.
    """
    here = globals().get("__file__") or sys._getframe().f_code.co_filename
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(here))))


def config(key, value):
    if key not in ("image", "kind", "resolver_dir", "mode", "export", "smapi_root", "opener", "opener_args",
                   "register_sanlock"):
        raise RuntimeError(f"unknown parameter {key!r}")
    _cfg[key] = value


def config_complete():
    if "image" not in _cfg:
        raise RuntimeError("image=PATH is required")
    if _cfg["kind"] not in ("vhd", "raw"):
        raise RuntimeError(f"kind must be vhd or raw, not {_cfg['kind']!r}")
    if _cfg["mode"] not in ("rw", "ro"):
        raise RuntimeError(f"mode must be rw or ro, not {_cfg['mode']!r}")
    root = _cfg.get("smapi_root") or _package_root()
    if root not in sys.path:
        sys.path.insert(0, root)


def after_fork():
    """After the background fork, register the serving process with the sanlock daemon when asked: the starter
    then takes the VDI's activation lease for this pid, and the daemon kills it if its host loses the lockspace.
    The connection stays open (in `_cfg`) for the server's whole life."""
    if _cfg.get("register_sanlock") not in ("1", "true", "yes", "on"):
        return
    import ctypes

    fd = ctypes.CDLL("libsanlock_client.so.1").sanlock_register()
    if fd < 0:
        raise RuntimeError(f"sanlock_register: {os.strerror(-fd)}")
    _cfg["sanlock_fd"] = fd


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


def _call_opener(writable):
    """Import the driver's opener (lazily: smapi is on sys.path only after config_complete) and call it."""
    import importlib
    import json

    module, _, func = _cfg["opener"].partition(":")
    args = json.loads(_cfg.get("opener_args") or "{}")
    return getattr(importlib.import_module(module), func)(args, writable=writable)


def get_ready():
    # Opening here (before nbdkit listens) makes a broken chain fail the server start, not the first client.
    global _disk
    image = _cfg["image"]
    writable = _cfg["mode"] == "rw"
    if "opener" in _cfg:
        leaf, resolver = _call_opener(writable)
        _disk = _RawDisk(image, writable, leaf) if _cfg["kind"] == "raw" else _VhdDisk(None, resolver, writable, leaf)
    elif _cfg["kind"] == "raw":
        _disk = _RawDisk(image, writable)
    else:
        from smapi.vhd import DirectoryResolver

        resolver_dir = _cfg.get("resolver_dir") or os.path.dirname(os.path.abspath(image))
        _disk = _VhdDisk(image, DirectoryResolver(resolver_dir), writable)


def _the_disk():
    """The image `get_ready` opened; nbdkit calls no per-connection callback before it."""
    if _disk is None:
        raise RuntimeError("the plugin has no disk open (get_ready did not run)")
    return _disk


def cleanup():
    global _disk
    if _disk is not None:
        disk, _disk = _disk, None
        disk.close()


# ------------------------------------------------------------------------------------------------ per connection
# Kept equal to smapi.datapath.nbd.READONLY_SUFFIX (this file imports nothing from smapi at load time).
_READONLY_SUFFIX = "@ro"


def list_exports(readonly, is_tls):
    export = _cfg.get("export", "")
    return [export, export + _READONLY_SUFFIX]


def default_export(readonly, is_tls):
    return _cfg.get("export", "")


def open(readonly):  # noqa: A001 - nbdkit looks the callbacks up by these names
    # A client asking for another VDI's name reached the wrong socket: refuse rather than serve this disk.
    name = nbdkit.export_name()
    export = _cfg.get("export", "")
    if name in ("", export):
        return {"readonly": readonly or not _the_disk().writable}
    if name == export + _READONLY_SUFFIX:
        # A reader sharing a writer's server: this connection refuses writes (can_write false, EROFS).
        return {"readonly": True}
    nbdkit.set_error(errno.ENOENT)
    raise RuntimeError(f"no export named {name!r}")


def get_size(h):
    return _the_disk().size()


def can_write(h):
    return not h["readonly"]


def can_flush(h):
    return True


def can_fua(h):
    return nbdkit.FUA_EMULATE  # nbdkit turns FUA into write + flush


def can_zero(h):
    return not h["readonly"]


def can_fast_zero(h):
    return True


def can_extents(h):
    return True


def can_multi_conn(h):
    # Every connection goes through the one shared disk object: a read sees what any connection wrote, and a flush
    # on any connection commits the whole chain (all connections' completed writes), which is what the flag
    # promises. Clients use it to open several connections: nbdcopy then copies with 4 instead of 1, which took
    # the per-request cost of nbdkit's Python glue (~1 s/GiB for a no-op plugin on one connection, ~0.7 s/GiB on
    # four, 2 loaded cores) off the write path's critical line.
    return True


def pread(h, buf, offset, flags):
    _the_disk().readinto(buf, offset)


def _refuse_if_readonly(h):
    if h["readonly"]:
        nbdkit.set_error(errno.EROFS)
        raise OSError(errno.EROFS, "read-only export")


def _flush_if_fua(flags):
    if flags & nbdkit.FLAG_FUA:
        _the_disk().flush()


def pwrite(h, buf, offset, flags):
    _refuse_if_readonly(h)
    _the_disk().write(buf, offset)
    _flush_if_fua(flags)


def flush(h, flags):
    if not h["readonly"]:
        _the_disk().flush()


def zero(h, count, offset, flags):
    _refuse_if_readonly(h)
    if not _the_disk().reads_as_zero(offset, count):
        if flags & nbdkit.FLAG_FAST_ZERO:
            nbdkit.set_error(errno.ENOTSUP)  # a fast zero must not fall back to writing
            raise OSError(errno.ENOTSUP, "zeroing would write data")
        zeros = bytes(min(count, _ZERO_CHUNK))
        pos = 0
        while pos < count:
            n = min(count - pos, len(zeros))
            _the_disk().write(memoryview(zeros)[:n], offset + pos)
            pos += n
    _flush_if_fua(flags)


def can_trim(h):
    # Advertised where trim releases something (smapi.vhd.trim: a leaf on a regular file), not on an LV.
    return not h["readonly"] and _the_disk().can_trim()


def trim(h, count, offset, flags):
    _refuse_if_readonly(h)
    _the_disk().trim(offset, count)
    _flush_if_fua(flags)


def extents(h, count, offset, flags):
    return _the_disk().extents(offset, count)
