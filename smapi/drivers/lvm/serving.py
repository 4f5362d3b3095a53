"""LVM volumes in the datapath: the opener a VDI's server calls.

LVs have no device node here (no device-mapper), so the nbdkit plugin cannot open a file: it calls
:func:`open_for_datapath` with the JSON arguments built by ``VolumeGroupSubstrate.datapath_image``, which
reopens the volume group the way the verb process sees it (same devices, same private lvm.conf) and returns the
leaf volume plus a resolver that finds parents as LVs *of that volume group only*. The iSCSI SR (LVM on a LUN)
uses the same opener.

The opener runs inside nbdkit's embedded *system* Python: it must import nothing beyond the standard library and
smapi itself. It is also where time matters (every activate starts a server): the verb passes what it already
knows (extent size, PV data offsets, provisioning), and the opener reads every segment map of the VG with one
``lvs`` call instead of one per chain member.

A raw VDI whose LV is one contiguous run on one PV is additionally described as a block device region, so a
consumer that wants a block device gets a loop device over the PV (see :mod:`smapi.datapath.blockdev`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from smapi.drivers.lvm.config import LvmConfig
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.substrate import OPENER, LvResolver, VolumeGroupSubstrate
from smapi.vhd import Backing, ParentResolver

__all__ = ["OPENER", "open_for_datapath"]


def open_for_datapath(args: Dict[str, Any], *, writable: bool) -> Tuple[Backing, Optional[ParentResolver]]:
    """The datapath's opener: ``(leaf volume, resolver of parents inside the same VG)``."""
    lvm = Lvm(args["devices"], args["conf_dir"])
    config = LvmConfig(list(args["devices"]), args.get("provisioning"), False, args.get("sr"))
    sub = VolumeGroupSubstrate(config, args["vg"], lvm=lvm)
    sub.uncached = bool(args.get("uncached"))  # a shared SR's chain: read what other hosts wrote, not old pages
    sub.prime(extent_size=args.get("extent_size"), pe_start=args.get("pe_start"))
    leaf = sub.open_volume(args["volume"], writable=writable)
    return leaf, (LvResolver(sub) if sub.is_vhd(args["volume"]) else None)
