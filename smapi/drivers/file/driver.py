"""FileDriver: the storage-interface implementations of the file SR (placeholder until the engine lands)."""

from __future__ import annotations

from typing import Any, Dict

from smapi import Driver, Query_skeleton, SR_skeleton, VDI_skeleton

FEATURES = ["SR_PROBE", "SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN", "SR_UPDATE",
            "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE",
            "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "VDI_UPDATE", "VDI_COMPOSE", "VDI_RESET_ON_BOOT/2"]
CONFIGURATION = {"path": "Directory holding the SR (created by SR.create if missing)"}


class FileQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {
            "driver": "file", "name": "File SR", "description": "VHD or raw VDIs as files in a local directory",
            "vendor": "smapi", "copyright": "LGPL-2.1-or-later", "version": "0.1",
            "required_api_version": "2.0", "features": FEATURES, "configuration": CONFIGURATION,
        }


class FileSR(SR_skeleton):
    pass


class FileVDI(VDI_skeleton):
    pass


class FileDriver(Driver):
    name = "file"
    storage = {"Query": FileQuery, "SR": FileSR, "VDI": FileVDI}
