"""LvmDriver: the LVM SR, i.e. the SR engine on a volume-group substrate (one LV per image, LVHD layout).

device_config: see :data:`smapi.drivers.lvm.config.CONFIGURATION` (``device``, ``provisioning``, ``force``,
``shared``, ``host_id``).

A shared SR (``shared=true`` at SR.create, remembered in the volume group; iSCSI SRs always) is attached by
several hosts at once: SR.attach joins its sanlock lockspace, SR.detach leaves it, SR.destroy is refused while
another live host is attached (`smapi.drivers.lvm.shared`, docs/pool.md). A host-local SR uses no sanlock.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional

from smapi.drivers.lvm.config import CONFIGURATION, SHARED_KEY, SR_KEY, parse
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.shared import SharedVolumeGroupSubstrate
from smapi.drivers.lvm.substrate import VG_PREFIX, VolumeGroupSubstrate, lvm_for, vg_name_for
from smapi.interface.errors import Backend_error
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr.errors import mapped_errors
from smapi.sr.sanlock.shared import joined_for_attach, leave, refuse_destroy_while_shared
from smapi.sr.storage_interface import EngineDriver, EngineSR, EngineVDI
from smapi.sr.substrate import Substrate


class LvmQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {
            "driver": "lvm", "name": "LVM SR",
            "description": "VHD (default) or raw VDIs as logical volumes of a volume group on local block devices",
            "vendor": "smapi", "copyright": "LGPL-2.1-or-later", "version": "0.1",
            "required_api_version": "2.0", "features": self.driver.features(), "configuration": CONFIGURATION,
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
        config = _with_sr(device_config, sr)
        # The volume group says whether the SR is shared (tagged at SR.create): attach on another host needs no
        # `shared=true`, and every later verb of this host finds it in the recorded configuration.
        config.pop(SHARED_KEY, None)
        if _shared_on_disk(config, sr):
            config[SHARED_KEY] = "true"
            sub = self.driver.make_substrate(config)
            assert isinstance(sub, SharedVolumeGroupSubstrate)
            with joined_for_attach(sub.pool(), sr, sub.join):
                super().attach(dbg, sr, config)
            return
        super().attach(dbg, sr, config)

    def detach(self, dbg: str, sr: str) -> None:
        sub = self._shared(sr)
        super().detach(dbg, sr)
        if sub is not None:
            leave(sub.pool(), sr)

    def destroy(self, dbg: str, sr: str) -> None:
        sub = self._shared(sr)
        if sub is None:
            super().destroy(dbg, sr)
            return
        refuse_destroy_while_shared(sub.pool(), sr)
        sub.leases.lockspace_area("")  # where to leave from, read while the leases LV still exists
        super().destroy(dbg, sr)
        with contextlib.suppress(Exception):
            sub.pool().leave()

    @staticmethod
    def leave_quietly(sub: Substrate) -> None:
        """A detach that could not reach the storage: still leave the lockspace (best effort)."""
        if isinstance(sub, SharedVolumeGroupSubstrate):
            with contextlib.suppress(Exception):
                sub.pool().leave()

    def _shared(self, sr: str) -> Optional[SharedVolumeGroupSubstrate]:
        sub = self._engine(sr).substrate
        return sub if isinstance(sub, SharedVolumeGroupSubstrate) else None

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


def _shared_on_disk(config: Dict[str, str], sr: str) -> bool:
    try:
        return VolumeGroupSubstrate(parse(config), vg_name_for(sr), lvm=lvm_for(parse(config).devices)).shared
    except Backend_error:
        return False  # no such volume group: SR.attach says so


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
            kind = SharedVolumeGroupSubstrate if config.shared else VolumeGroupSubstrate
            return kind(config, vg_name_for(config.sr), lvm=lvm)
        # No SR named (probe, or a configuration from describe()): the smapi volume group on these devices.
        # Several (devices of two SRs listed together) name none: probe still lists them all.
        ours = [vg for vg in _volume_groups(lvm) if vg.startswith(VG_PREFIX)]
        return VolumeGroupSubstrate(config, ours[0] if len(ours) == 1 else None, lvm=lvm)
