"""A vendor's driver on EngineDriver: its SR keeps its images in `<path>/images` (a substrate of its own choosing)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict

from smapi.interface.errors import Backend_error
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr.enginedriver import ENGINE_SR, ENGINE_VDI, EngineDriver

if TYPE_CHECKING:
    from smapi.sr.substrate import Substrate

FEATURES = ["SR_PROBE", "SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN", "VDI_CREATE", "VDI_DELETE",
            "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE",
            "VDI_COMPOSE", "VDI_RESET_ON_BOOT/2", "VDI_CONFIG_CBT"]


class OutsideQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {"driver": "outsidesr", "name": "Outside SR", "description": "a vendor's SR", "vendor": "a vendor",
                "copyright": "the vendor", "version": "1.0", "required_api_version": "2.0", "features": FEATURES,
                "configuration": {"path": "Directory of the SR"}}

    def diagnostics(self, dbg: str) -> str:
        return "outsidesr: fine"


class OutsideSR(EngineDriver):
    name = "outsidesr"
    storage = {"Query": OutsideQuery, "SR": ENGINE_SR, "VDI": ENGINE_VDI}

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        from smapi.sr.directory import DirectorySubstrate

        if not device_config.get("path"):
            raise Backend_error.classic("ConfigLocationMissing", "outsidesr needs device_config key 'path'")
        return DirectorySubstrate(os.path.join(device_config["path"], "images"))
