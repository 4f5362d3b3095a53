#!/usr/bin/env python3
"""SR.* of the test plugin: an SR is a directory named by its configuration's `path`."""

import json
import os
import sys

import volume

import xapi
import xapi.storage.api.v5.volume
from xapi.storage import log
from xapi.storage.api.v5.volume import SR_does_not_exist, SR_skeleton


class Implementation(SR_skeleton):
    def create(self, dbg, uuid, configuration, name, description):
        path = configuration["path"]
        if os.path.exists(os.path.join(path, "sr.json")):
            raise xapi.XenAPIException("SR_BACKEND_FAILURE_42", ["", "An SR already exists at " + path, ""])
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "sr.json"), "w") as f:
            json.dump({"uuid": uuid, "name": name, "description": description}, f)
        return configuration

    def attach(self, dbg, configuration):
        path = configuration["path"]
        if not os.path.exists(os.path.join(path, "sr.json")):
            raise SR_does_not_exist(path)
        return "file://" + path

    def detach(self, dbg, sr):
        pass

    def stat(self, dbg, sr):
        path = sr[len("file://"):]
        with open(os.path.join(path, "sr.json")) as f:
            meta = json.load(f)
        return {
            "sr": sr, "name": meta["name"], "uuid": meta["uuid"], "description": meta["description"],
            "free_space": 0, "total_space": 0, "datasources": [], "clustered": False, "health": ["Healthy", ""],
        }

    def ls(self, dbg, sr):
        return volume.Implementation().ls(dbg, sr)


if __name__ == "__main__":
    log.log_call_argv()
    cmd = xapi.storage.api.v5.volume.SR_commandline(Implementation())
    base_class, op = os.path.basename(sys.argv[0]).split(".")
    fn = getattr(cmd, op.lower(), None)
    assert fn, op
    fn()
