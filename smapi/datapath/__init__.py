"""Datapath: the server(s) of a VDI on this host, which make its bytes reachable by a consumer (GitHub issue 8).

A VHD chain is served as one raw disk over NBD by nbdkit (its Python plugin reads the chain through smapi.vhd) on
a Unix socket; a raw file is served the same way and is also usable as the file itself; a raw image lying in one
region of a block device can be handed out as a loop device over that region (:mod:`.blockdev`). This package
starts, stops, flushes and finds those servers; it keeps no attach/activate state: the SR engine's automaton
decides when a VDI is served (``smapi.sr.vdi_servers``)::

    start(vdi, ImageSpec("vhd", leaf, resolver_dir), readonly=..., owner=sr, run_dir=...) -> NbdExport
    stop(vdi, owner=sr, run_dir=...)     # flushes first     flush(vdi, run_dir=...)
    server(vdi, run_dir=...)             serving(vdi, owner=sr, run_dir=...)     served(run_dir, owner)
    address(vdi, run_dir=...)            cleanup_stale(run_dir)                  teardown_all(run_dir)

Volumes that are no files on this host (LVs without device-mapper, LUNs) are given as an *opener* ImageSpec
(``ImageSpec.opened_by(kind, "module:function", args, ...)``): the plugin calls the driver's function inside nbdkit
to get the leaf Backing and a resolver of its parents.

Lower-level pieces: :mod:`.servers` (the API above), :mod:`.nbd` (nbdkit processes), :mod:`.nbd_plugin` (the
plugin), :mod:`.loop` (loop devices), :mod:`.blockdev` (loop devices over device regions, recorded per VDI),
:mod:`.nbdclient` (a minimal NBD client for readiness and flush).
"""

from .loop import BlockDevices, LoopDevices, kernel_nbd_available
from .model import DatapathError, ImageSpec
from .nbd import READONLY_SUFFIX, NbdExport, NbdServer, classic_params_nbd, nbd_uri
from .servers import (
    DatapathInUse,
    address,
    cleanup_stale,
    flush,
    served,
    server,
    serving,
    start,
    stop,
    teardown_all,
)

__all__ = [
    "start", "stop", "flush", "server", "serving", "served", "address", "cleanup_stale", "teardown_all",
    "DatapathError", "DatapathInUse", "ImageSpec", "NbdExport", "NbdServer", "BlockDevices", "LoopDevices",
    "kernel_nbd_available", "READONLY_SUFFIX", "nbd_uri", "classic_params_nbd",
]
