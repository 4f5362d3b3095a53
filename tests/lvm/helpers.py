"""A small client of the LVM driver for its own tests (the conformance suite has the full one)."""

from __future__ import annotations

from typing import Any, Dict, List

from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.substrate import VG_PREFIX, VolumeGroupSubstrate
from tests.sr.client import DriverClient

MiB = 1 << 20


class LvmSR(DriverClient):
    """One LVM SR driven through the dispatcher, as every transport drives it."""

    def __init__(self, device_config: Dict[str, str], sr: str = "") -> None:
        super().__init__("lvm", device_config, sr)

    @property
    def vg(self) -> str:
        return VG_PREFIX + self.sr

    @property
    def devices(self) -> List[str]:
        return self.device_config["device"].split(",")

    def vdi(self, size: int, **fields: Any) -> Dict[str, Any]:
        return self.v("VDI.create", vdi_info={"virtual_size": size, **fields})

    def stat(self, vdi: str) -> Dict[str, Any]:
        return self.v("VDI.stat", vdi=vdi)

    def snapshot(self, vdi: str) -> Dict[str, Any]:
        return self.v("VDI.snapshot", vdi_info=self.stat(vdi))

    def substrate(self) -> VolumeGroupSubstrate:
        return self.driver.engine_for(self.sr).substrate  # type: ignore[return-value]

    def lvm(self) -> Lvm:
        return self.substrate().lvm

    def lv_sizes(self) -> Dict[str, int]:
        rows = self.lvm().lvs(["lv_name", "lv_size"], self.vg)
        return {r["lv_name"]: int(r["lv_size"]) for r in rows}

    def lv_of(self, vdi: str) -> str:
        doc = self.substrate().load_document("sr") or {}
        return doc["vdis"][vdi]["volume"]
