"""LVM volumes in the datapath: what a VDI's server is told (an opener ImageSpec), and the opener it calls.

LVs have no device node here (no device-mapper), so the nbdkit plugin cannot open a file: it calls
:func:`open_for_datapath` with the JSON arguments built by :func:`image_spec`, which reopens the volume group
the way the verb process sees it (same devices, same private lvm.conf) and returns the leaf volume plus a resolver
that finds parents as LVs *of that volume group only*. The iSCSI SR (LVM on a LUN) uses the same opener.

The opener runs inside nbdkit's embedded *system* Python: it must import nothing beyond the standard library and
smapi itself. It is also where time matters (every activate starts a server): the verb passes what it already
knows (extent size, PV data offsets, provisioning), and the opener reads every segment map of the VG with one
``lvs`` call instead of one per chain member.

A raw VDI whose LV is one contiguous run on one PV is additionally described as a block device region, so a
consumer that wants a block device gets a loop device over the PV (see :mod:`smapi.datapath.blockdev`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from smapi.drivers.lvm.access import SegmentMapAccess
from smapi.drivers.lvm.config import LvmConfig
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.vhd import Backing, ParentResolver

if TYPE_CHECKING:
    from smapi.datapath.model import ImageSpec
    from smapi.drivers.lvm.substrate import VolumeGroupSubstrate

OPENER = "smapi.drivers.lvm.serving:open_for_datapath"


def image_spec(sub: VolumeGroupSubstrate, name: str, fmt: str) -> ImageSpec:
    from smapi.datapath.model import ImageSpec

    vg = sub._need_vg()
    access = sub.access
    args: Dict[str, Any] = {
        "devices": list(sub.devices), "conf_dir": sub.lvm.config_dir, "vg": vg, "sr": sub.config.sr,
        "provisioning": sub.provisioning, "extent_size": sub.extent_size, "volume": name,
    }
    block: Optional[Tuple[str, int, int]] = None
    if isinstance(access, SegmentMapAccess):
        args["pe_start"] = sub._pe_starts()
        if fmt == "raw":
            block = sub.raw_region(name)
    return ImageSpec.opened_by(fmt, OPENER, args, description=sub.volume_url(name), block=block)


def open_for_datapath(args: Dict[str, Any], *, writable: bool) -> Tuple[Backing, Optional[ParentResolver]]:
    """The datapath's opener: ``(leaf volume, resolver of parents inside the same VG)``."""
    from smapi.drivers.lvm.substrate import LvResolver, VolumeGroupSubstrate

    lvm = Lvm(args["devices"], args["conf_dir"])
    config = LvmConfig(list(args["devices"]), args.get("provisioning"), False, args.get("sr"))
    sub = VolumeGroupSubstrate(config, args["vg"], lvm=lvm)
    sub.prime(extent_size=args.get("extent_size"), pe_start=args.get("pe_start"))
    leaf = sub.open_volume(args["volume"], writable=writable)
    return leaf, (LvResolver(sub) if sub.is_vhd(args["volume"]) else None)
