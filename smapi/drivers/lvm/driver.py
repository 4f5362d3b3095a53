"""LvmDriver: the LVM SR, i.e. the SR engine on a volume-group substrate (one LV per image, LVHD layout).

device_config: see :data:`smapi.drivers.lvm.config.CONFIGURATION` (``device``, ``provisioning``, ``force``).
"""

from __future__ import annotations

from typing import Any, Dict, List

from smapi.drivers.lvm.config import CONFIGURATION, SR_KEY, parse
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.substrate import VG_PREFIX, VolumeGroupSubstrate, lvm_for, vg_name_for
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr.errors import mapped_errors
from smapi.sr.storage_interface import EngineDriver, EngineSR, EngineVDI
from smapi.sr.substrate import Substrate

FEATURES = ["SR_PROBE", "SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN", "SR_UPDATE",
            "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE",
            "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "VDI_UPDATE", "VDI_COMPOSE", "VDI_RESET_ON_BOOT/2",
            "VDI_GENERATE_CONFIG", "VDI_CONFIG_CBT"]


class LvmQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {
            "driver": "lvm", "name": "LVM SR",
            "description": "VHD (default) or raw VDIs as logical volumes of a volume group on local block devices",
            "vendor": "smapi", "copyright": "LGPL-2.1-or-later", "version": "0.1",
            "required_api_version": "2.0", "features": FEATURES, "configuration": CONFIGURATION,
            "supported_image_formats": ["vhd", "raw"],
        }

    def diagnostics(self, dbg: str) -> str:
        from smapi.sr.runstate import RunState

        return f"LVM SRs attached on this host: {RunState().attached_srs(LvmDriver.reference())}"


def _with_sr(device_config: Dict[str, str], sr: str) -> Dict[str, str]:
    """The volume group is named after the SR: create and attach tell the substrate which SR it is."""
    return {**device_config, SR_KEY: sr}


class LvmSR(EngineSR):
    def create(self, dbg: str, sr: str, device_config: Dict[str, str], physical_size: int) -> None:
        super().create(dbg, sr, _with_sr(device_config, sr), physical_size)

    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        super().attach(dbg, sr, _with_sr(device_config, sr))

    def probe(self, dbg: str, device_config: Dict[str, str], sm_config: Dict[str, str]) -> Any:
        kind, found = super().probe(dbg, device_config, sm_config)
        # Volume groups that are not smapi SRs are worth showing too: they are why SR.create would refuse.
        with mapped_errors("SR.probe"):
            config = parse(device_config)
            lvm = lvm_for(config.devices)
            known = {(f.get("sr") or {}).get("sr_uuid") for f in found}
            for vg, devices in _volume_groups(lvm).items():
                if vg.startswith(VG_PREFIX) and vg[len(VG_PREFIX):] in known:
                    continue
                found.append({"configuration": {"device": ",".join(devices)}, "complete": False, "sr": None,
                              "extra_info": {"vg_name": vg, "smapi": "false"}})
        return [kind, found]


def _volume_groups(lvm: Lvm) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for row in lvm.pvs(["pv_name", "vg_name"]):
        if row.get("vg_name"):
            out.setdefault(row["vg_name"], []).append(row["pv_name"])
    return out


class LvmDriver(EngineDriver):
    name = "lvm"
    storage = {"Query": LvmQuery, "SR": LvmSR, "VDI": EngineVDI}

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        config = parse(device_config)
        lvm = lvm_for(config.devices)
        if config.sr:
            return VolumeGroupSubstrate(config, vg_name_for(config.sr), lvm=lvm)
        # No SR named (probe, or a configuration from describe()): the smapi volume group on these devices.
        # Several (devices of two SRs listed together) name none: probe still lists them all.
        ours = [vg for vg in _volume_groups(lvm) if vg.startswith(VG_PREFIX)]
        return VolumeGroupSubstrate(config, ours[0] if len(ours) == 1 else None, lvm=lvm)
