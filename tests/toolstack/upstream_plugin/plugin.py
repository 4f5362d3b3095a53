#!/usr/bin/env python3
"""Plugin.* of a small SMAPIv3 volume plugin written only against xen-api's Python bindings (the `xapi` and
`xapi.storage.api.v5` names), as vendors write them: it imports only those and the standard library."""

import os
import sys

import xapi.storage.api.v5.plugin
from xapi.storage import log


class Implementation(xapi.storage.api.v5.plugin.Plugin_skeleton):
    def query(self, dbg):
        return {
            "plugin": "dirfile", "name": "Directory of raw files", "description": "test plugin",
            "vendor": "tests", "copyright": "tests", "version": "1.0", "required_api_version": "5.0",
            "features": ["SR_ATTACH", "SR_DETACH", "SR_CREATE", "VDI_CREATE", "VDI_DESTROY"],
            "configuration": {"path": "directory holding the SR"}, "required_cluster_stack": [],
        }

    def ls(self, dbg):
        return []


if __name__ == "__main__":
    log.log_call_argv()
    cmd = xapi.storage.api.v5.plugin.Plugin_commandline(Implementation())
    base = os.path.basename(sys.argv[0])
    if base == "Plugin.Query":
        cmd.query()
    elif base == "Plugin.ls":
        cmd.ls()
    else:
        getattr(cmd, base.split(".")[1])()
