#!/usr/bin/env python3
"""Volume.* of the test plugin: a volume is a raw file plus a JSON sidecar."""

import json
import os
import sys
import uuid

import xapi.storage.api.v5.volume
from xapi.storage import log
from xapi.storage.api.v5.volume import Volume_does_not_exist, Volume_skeleton


def _path(sr):
    return sr[len("file://"):]


class Implementation(Volume_skeleton):
    def _info(self, sr, key):
        meta_file = os.path.join(_path(sr), key + ".json")
        if not os.path.exists(meta_file):
            raise Volume_does_not_exist(key)
        with open(meta_file) as f:
            meta = json.load(f)
        return {
            "key": key, "uuid": key, "name": meta["name"], "description": meta["description"],
            "read_write": True, "sharable": False, "virtual_size": meta["size"],
            "physical_utilisation": meta["size"], "uri": ["raw+file://" + os.path.join(_path(sr), key)],
            "keys": {},
        }

    def create(self, dbg, sr, name, description, size, sharable):
        key = str(uuid.uuid4())
        with open(os.path.join(_path(sr), key), "wb") as f:
            f.truncate(size)
        with open(os.path.join(_path(sr), key + ".json"), "w") as f:
            json.dump({"name": name, "description": description, "size": size}, f)
        return self._info(sr, key)

    def stat(self, dbg, sr, key):
        return self._info(sr, key)

    def destroy(self, dbg, sr, key):
        self._info(sr, key)
        os.unlink(os.path.join(_path(sr), key))
        os.unlink(os.path.join(_path(sr), key + ".json"))

    def ls(self, dbg, sr):
        return [self._info(sr, name[:-5]) for name in sorted(os.listdir(_path(sr)))
                if name.endswith(".json") and name != "sr.json"]


if __name__ == "__main__":
    log.log_call_argv()
    cmd = xapi.storage.api.v5.volume.Volume_commandline(Implementation())
    base_class, op = os.path.basename(sys.argv[0]).split(".")
    getattr(cmd, op.lower())()
