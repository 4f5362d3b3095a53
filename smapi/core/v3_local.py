"""Using a volume's data from inside a v3 verb: serve it for a moment, on a datapath of its own.

Volume.revert and Data.copy read (and revert writes) volume contents. They attach and activate the VDI through
the driver's storage verbs on a private datapath (`dp`), so the storage's rules about who uses a VDI apply, and
connect to the NBD export the attach hands out.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from smapi.interface.errors import Backend_error

#: `call(wire_name, **args)`: a storage verb of the volume's driver (dbg supplied by the caller)
StorageCall = Callable[..., Any]


def export_uri(device: Any, vdi: str) -> str:
    uri = device.get("params_nbd") or "" if isinstance(device, dict) else ""
    if not uri:
        raise Backend_error("NO_NBD_EXPORT", [vdi, "the driver's attach gave no NBD export to read the data from"])
    return uri


def acquire(call: StorageCall, dp: str, sr: str, vdi: str, read_write: bool) -> str:
    """Attach and activate `vdi` on datapath `dp`; returns its NBD URI. `release` undoes it."""
    device = call("VDI.attach", dp=dp, sr=sr, vdi=vdi, read_write=read_write)
    try:
        call("VDI.activate", dp=dp, sr=sr, vdi=vdi)
        return export_uri(device, vdi)
    except BaseException:
        call("VDI.detach", dp=dp, sr=sr, vdi=vdi)
        raise


def release(call: StorageCall, dp: str, sr: str, vdi: str) -> None:
    try:
        call("VDI.deactivate", dp=dp, sr=sr, vdi=vdi)
    finally:
        call("VDI.detach", dp=dp, sr=sr, vdi=vdi)


@contextmanager
def served(call: StorageCall, dp: str, sr: str, vdi: str, read_write: bool) -> Iterator[str]:
    uri = acquire(call, dp, sr, vdi, read_write)
    try:
        yield uri
    finally:
        release(call, dp, sr, vdi)


def revert(call: StorageCall, sr: str, snapshot: str, key: str) -> None:
    """Make volume `key` hold the contents of `snapshot`, keeping its identity (Volume.revert).

    The storage interface has no revert of its own, so the contents are copied through the datapath: the volume
    is grown first if the snapshot is larger; a volume larger than its snapshot (resized since) keeps its size
    and reads zeros past the snapshot's end (volumes cannot shrink).
    """
    from smapi.core.nbd_copy import connect, copy_ranges, zero_tail

    snap_size = call("VDI.stat", sr=sr, vdi=snapshot)["virtual_size"]
    if call("VDI.stat", sr=sr, vdi=key)["virtual_size"] < snap_size:
        call("VDI.resize", sr=sr, vdi=key, new_size=snap_size)
    with served(call, f"revert/{key}/src", sr, snapshot, False) as src_uri, \
            served(call, f"revert/{key}", sr, key, True) as dst_uri, \
            connect(src_uri, "snapshot") as src, connect(dst_uri, "key") as dst:
        copy_ranges(src, dst, [(0, min(snap_size, src.info.size))])
        zero_tail(dst, snap_size)
        if dst.info.can_flush:
            dst.flush()
