"""FileDriver: the file SR, i.e. the SR engine on a directory substrate (one file per image).

device_config:
    path  directory of the SR (created by SR.create)
    gc    optional: sync | background (default) | off -- when garbage collection runs after destroy/snapshot
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from smapi.interface.errors import Backend_error
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr.enginedriver import ENGINE_SR, ENGINE_VDI, EngineDriver

if TYPE_CHECKING:
    from smapi.sr.substrate import Substrate

FEATURES = ["SR_PROBE", "SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN", "SR_UPDATE",
            "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE",
            "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "VDI_UPDATE", "VDI_COMPOSE", "VDI_RESET_ON_BOOT/2",
            "VDI_GENERATE_CONFIG", "VDI_CONFIG_CBT"]
CONFIGURATION = {
    "path": "Directory holding the SR (created by SR.create if missing)",
    "gc": "When garbage collection runs after destroy/snapshot: background (default), sync or off",
}


class FileQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {
            "driver": "file", "name": "File SR", "description": "VHD or raw VDIs as files in a local directory",
            "vendor": "smapi", "copyright": "LGPL-2.1-or-later", "version": "0.1",
            "required_api_version": "2.0", "features": FEATURES, "configuration": CONFIGURATION,
            "supported_image_formats": ["vhd", "raw"],
        }

    def diagnostics(self, dbg: str) -> str:
        from smapi.datapath.native import diagnostics_line
        from smapi.sr.runstate import RunState

        return f"file SRs attached on this host: {RunState().attached_srs(FileDriver.reference())}; " \
               + diagnostics_line()


class FileDriver(EngineDriver):
    name = "file"
    storage = {"Query": FileQuery, "SR": ENGINE_SR, "VDI": ENGINE_VDI}

    def canonical_config(self, device_config: Dict[str, str]) -> Dict[str, str]:
        import os

        config = dict(device_config)
        if config.get("path"):
            config["path"] = os.path.abspath(config["path"])
        return config

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        from smapi.sr.directory import DirectorySubstrate

        path = device_config.get("path")
        if not path:
            raise Backend_error.classic("ConfigLocationMissing", "the file SR needs device_config key 'path'")
        return DirectorySubstrate(path)
