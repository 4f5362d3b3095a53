"""The LVM driver's device_config: which block devices, how VDIs are provisioned, whether to overwrite data."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Dict, List, Optional

from smapi.drivers.lvm.provision import PROVISIONING
from smapi.interface.errors import Backend_error
from smapi.sr.sanlock.shared import host_id_from

#: documented in Query.query's `configuration`
CONFIGURATION = {
    "device": "Block device(s) the volume group lives on, comma-separated (e.g. /dev/sdb or /dev/sdb,/dev/sdc)",
    "provisioning": "thick (default: each VHD leaf's LV holds its full virtual size) or thin (LVs grow with "
                    "the data); remembered in the volume group, so attach may omit it",
    "force": "true to let SR.create overwrite devices holding data (an LVM signature or a non-zero first MiB)",
    "shared": "true at SR.create when the devices are shared storage other hosts see too (an FC or SAS LUN): the "
              "SR is then coordinated across hosts by sanlock leases in the volume group (docs/pool.md) and may "
              "be attached on several hosts at once; remembered in the volume group, so attach may omit it. "
              "Default false: a host-local SR",
    "host_id": "this host's id (1..64) in a shared SR's sanlock lockspace; optional: by default a free id is "
               "allocated at the first SR.attach",
}

#: key the driver adds internally so a substrate knows the SR uuid before the SR document exists
SR_KEY = "sr_uuid"
SHARED_KEY = "shared"
_TRUE = ("true", "yes", "1", "on")


@dataclass(frozen=True)
class LvmConfig:
    devices: List[str]
    provisioning: Optional[str]  # None: whatever the volume group says (thick for a new one)
    force: bool
    sr: Optional[str]
    #: coordinated across hosts (sanlock): asked for at SR.create, else what the volume group says at attach
    shared: bool = False
    #: this host's id in the SR's lockspace; None: allocated
    host_id: Optional[int] = None


def parse(device_config: Dict[str, str]) -> LvmConfig:
    raw = device_config.get("device", "")
    devices = [d.strip() for d in raw.split(",") if d.strip()]
    if not devices:
        raise Backend_error.classic("ConfigDeviceMissing", "device_config needs device=<block device>[,<...>]")
    for dev in devices:
        check_block_device(dev)
    if len(set(devices)) != len(devices):
        raise Backend_error.classic("ConfigDeviceInvalid", f"device lists a device twice: {raw}")
    prov = device_config.get("provisioning") or device_config.get("allocation") or None
    if prov is not None and prov not in PROVISIONING:
        raise Backend_error.classic("ConfigDeviceInvalid", f"provisioning must be thick or thin, not {prov!r}")
    force = str(device_config.get("force", "")).lower() in _TRUE
    shared = str(device_config.get(SHARED_KEY, "")).lower() in _TRUE
    return LvmConfig(devices, prov, force, device_config.get(SR_KEY) or None, shared, host_id_from(device_config))


def check_block_device(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise Backend_error.classic("ConfigDeviceInvalid", f"{path}: {e.strerror}") from None
    if not stat.S_ISBLK(mode):
        raise Backend_error.classic("ConfigDeviceInvalid", f"{path} is not a block device")
