"""A small client of the LVM driver for its own tests (the conformance suite has the full one)."""

from __future__ import annotations

import uuid
from typing import Any, Dict, List

from smapi.driver import load_driver
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.substrate import VG_PREFIX, VolumeGroupSubstrate
from smapi.interface.apis import get_api
from smapi.rpc.dispatcher import Dispatcher

MiB = 1 << 20


class LvmSR:
    """One LVM SR driven through the dispatcher, as every transport drives it."""

    def __init__(self, device_config: Dict[str, str], sr: str = "") -> None:
        self.device_config = dict(device_config)
        self.sr = sr or str(uuid.uuid4())
        self.driver = load_driver("lvm")
        self.dispatcher = Dispatcher(get_api("storage"), self.driver.implementations("storage"))

    @property
    def vg(self) -> str:
        return VG_PREFIX + self.sr

    @property
    def devices(self) -> List[str]:
        return self.device_config["device"].split(",")

    def call(self, verb: str, **args: Any) -> Any:
        args.setdefault("dbg", f"tests/lvm:{verb}")
        return self.dispatcher.call(verb, args)

    def v(self, verb: str, **args: Any) -> Any:
        return self.call(verb, sr=self.sr, **args)

    def create(self, physical_size: int = 0) -> None:
        self.call("SR.create", sr=self.sr, device_config=self.device_config, physical_size=physical_size)

    def attach(self) -> None:
        self.call("SR.attach", sr=self.sr, device_config=self.device_config)

    def vdi(self, size: int, **fields: Any) -> Dict[str, Any]:
        return self.v("VDI.create", vdi_info={"virtual_size": size, **fields})

    def stat(self, vdi: str) -> Dict[str, Any]:
        return self.v("VDI.stat", vdi=vdi)

    def snapshot(self, vdi: str) -> Dict[str, Any]:
        return self.v("VDI.snapshot", vdi_info=self.stat(vdi))

    def write(self, vdi: str, offset: int, data: bytes) -> None:
        h = self.driver.open_vdi(self.sr, vdi, writable=True)
        try:
            h.write(offset, data)
            h.flush()
        finally:
            h.close()

    def read(self, vdi: str, offset: int, length: int) -> bytes:
        h = self.driver.open_vdi(self.sr, vdi)
        try:
            return bytes(h.read(offset, length))
        finally:
            h.close()

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
