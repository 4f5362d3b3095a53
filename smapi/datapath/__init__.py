"""Datapath: make a VDI's bytes reachable by a consumer on this host (GitHub issue 8).

A VHD chain is served as one raw disk over NBD by nbdkit (its Python plugin reads the chain through smapi.vhd) on
a Unix socket; a raw file is served the same way and is also offered as a ``File`` or, on request, a loop
``BlockDevice``. The SR engine drives it per datapath::

    attach(vdi, ImageSpec("vhd", leaf, resolver_dir), dp=..., readonly=..., run_dir=...) -> AttachResult
    activate(vdi, dp=..., run_dir=...)      deactivate(vdi, dp=..., run_dir=...)   # flushes
    detach(vdi, dp=..., run_dir=...)        # the last dp stops the server, removes socket and loop device
    stat(vdi, run_dir=...)                  cleanup_stale(run_dir)                 teardown_all(run_dir)
    attached(run_dir)                       # {vdi: {dp: state}} of this boot

Volumes that are no files on this host (LVs without device-mapper, LUNs) are given as an *opener* ImageSpec
(``ImageSpec.opened_by(kind, "module:function", args, ...)``): the plugin calls the driver's function inside nbdkit
to get the leaf Backing and a resolver of its parents. A raw image lying in one region of a block device can be
handed out as a loop device over that region (:mod:`.blockdev`).

Lower-level pieces: :mod:`.nbd` (nbdkit processes), :mod:`.nbd_plugin` (the plugin), :mod:`.loop` (loop devices),
:mod:`.blockdev` (loop devices over device regions, recorded per VDI), :mod:`.nbdclient` (a minimal NBD client for
readiness and flush).
"""

from .facade import activate, attach, attached, cleanup_stale, deactivate, detach, stat, teardown_all
from .loop import BlockDevices, LoopDevices, kernel_nbd_available
from .model import AttachResult, DatapathError, ImageSpec
from .nbd import READONLY_SUFFIX, NbdExport, NbdServer, classic_params_nbd, nbd_uri

__all__ = [
    "attach", "activate", "attached", "deactivate", "detach", "stat", "cleanup_stale", "teardown_all",
    "AttachResult", "DatapathError", "ImageSpec", "NbdExport", "NbdServer", "BlockDevices", "LoopDevices",
    "kernel_nbd_available", "READONLY_SUFFIX", "nbd_uri", "classic_params_nbd",
]
