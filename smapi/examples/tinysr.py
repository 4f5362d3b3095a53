"""A whole SR driver in 25 lines: the SR engine (snapshots, clones, GC, journal, datapath) on a directory.

Registered as `tinysr`; `smapi conformance --driver tinysr` passes. To put the engine on other storage, return
your own `smapi.sr.substrate.Substrate` from `make_substrate` (docs/writing-a-driver.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from smapi.interface.errors import Backend_error
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr.enginedriver import ENGINE_SR, ENGINE_VDI, EngineDriver

if TYPE_CHECKING:
    from smapi.sr.substrate import Substrate


class TinyQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {"driver": "tinysr", "name": "Tiny SR", "description": "VHDs in a directory, run by the SR engine",
                "vendor": "smapi examples", "copyright": "public domain", "version": "1.0",
                "required_api_version": "2.0", "configuration": {"path": "Directory of the SR"},
                "features": ["SR_PROBE", "SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN",
                             "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE",
                             "VDI_DEACTIVATE", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "VDI_COMPOSE",
                             "VDI_RESET_ON_BOOT/2"]}

    def diagnostics(self, dbg: str) -> str:
        return "tinysr: nothing to report"


class TinySR(EngineDriver):
    name = "tinysr"
    storage = {"Query": TinyQuery, "SR": ENGINE_SR, "VDI": ENGINE_VDI}

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        from smapi.sr.directory import DirectorySubstrate  # imported on use: Plugin.Query stays fast

        if not device_config.get("path"):
            raise Backend_error.classic("ConfigLocationMissing", "tinysr needs device_config key 'path'")
        return DirectorySubstrate(device_config["path"])
