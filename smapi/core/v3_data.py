"""The SMAPIv3 Data interface on a driver's storage verbs: copies to remote NBD disks, tracked across processes.

`Data.copy` serves the volume read-only on a datapath of the operation's own (`data/<id>`), records the
operation (`smapi.core.data_ops`) and starts a detached worker (`smapi.core.data_worker`) that copies the
blocklist to the remote NBD URI and records its progress; `stat`, `cancel`, `destroy` and `ls`, each in its own
process, read and update that record.

`Data.mirror` is not implemented: keeping a remote copy in sync needs the datapath to duplicate every write of
the running guest, and smapi's datapath (nbdkit serving the image file) has no such write fan-out. It answers
Unimplemented with that reason, and the datapath plugin does not advertise VDI_MIRROR.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, List

from smapi.core import data_ops
from smapi.core.v3_adapter import _OnStorage, parse_volume_uri
from smapi.core.v3_features import refused
from smapi.interface.errors import Invalid_argument, Unimplemented
from smapi.interface.skeletons.v3 import Data_skeleton

MIRROR_REASON = ("Data.mirror (smapi's datapath, nbdkit over the image, cannot duplicate a running guest's "
                 "writes to a remote disk; copy a snapshot with Data.copy instead)")
#: how long Data.destroy waits for a cancelled worker to stop
DESTROY_WAIT = 30.0


def _operation_id(operation: Any) -> str:
    if not (isinstance(operation, list) and len(operation) == 2 and operation[0] in ("CopyV1", "MirrorV1")):
        raise Invalid_argument("operation", f"expected [\"CopyV1\", key], got {operation!r}")
    return str(operation[1])


def _driver_reference(driver: Any) -> str:
    reference = getattr(type(driver), "reference", None)
    if callable(reference):
        return str(reference())
    return f"{type(driver).__module__}:{type(driver).__qualname__}"


class DataOnStorage(_OnStorage, Data_skeleton):
    def copy(self, dbg: str, uri: str, domain: str, remote: str, blocklist: Dict[str, Any]) -> List[str]:
        import subprocess  # only a copy starts a process (cold start of the other verbs)
        import uuid

        from smapi.common.paths import package_root
        from smapi.core.nbd_copy import byte_ranges, parse_nbd_uri
        from smapi.core.v3_local import acquire, release

        sr, vdi = parse_volume_uri(uri)
        parse_nbd_uri(remote)  # a bad URI is the caller's mistake, reported now rather than by the worker
        size = self.s("VDI.stat", dbg, sr=sr, vdi=vdi)["virtual_size"]
        ranges = byte_ranges(blocklist["blocksize"], blocklist["ranges"], size)
        op_id = uuid.uuid4().hex
        dp = f"data/{op_id}"
        call = lambda verb, **args: self.s(verb, dbg, **args)  # noqa: E731
        local = acquire(call, dp, sr, vdi, False)
        record = {"id": op_id, "kind": "copy", "sr": sr, "vdi": vdi, "dp": dp, "domain": domain,
                  "driver": _driver_reference(self.driver), "local": local, "remote": remote,
                  "ranges": [list(r) for r in ranges], "total": sum(n for _, n in ranges), "done": 0,
                  "pid": None, "complete": False, "failed": False, "error": "", "cancel": False}
        try:
            data_ops.create(record)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, [package_root(), os.environ.get("PYTHONPATH")]))}
            worker = subprocess.Popen([sys.executable, "-m", data_ops.WORKER_MODULE, op_id], env=env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except BaseException:
            release(call, dp, sr, vdi)
            data_ops.remove(op_id)
            raise
        with data_ops.updating(op_id) as r:
            r["pid"] = worker.pid
        return ["CopyV1", op_id]

    @refused
    def mirror(self, dbg: str, uri: str, domain: str, remote: str) -> List[str]:
        raise Unimplemented(MIRROR_REASON)

    def stat(self, dbg: str, operation: Any) -> Dict[str, Any]:
        op_id = _operation_id(operation)
        record = self._settled(dbg, op_id)
        return {"failed": bool(record["failed"]), "complete": bool(record["complete"]),
                "progress": data_ops.progress(record)}

    def _settled(self, dbg: str, op_id: str) -> Dict[str, Any]:
        """The record, with an abandoned operation (its worker died) marked failed and its datapath released."""
        record = data_ops.read(op_id)
        if not data_ops.abandoned(record):
            return record
        with data_ops.updating(op_id) as r:
            if data_ops.abandoned(r):
                release_error = data_ops.release_datapath(r)
                r.update(complete=True, failed=True, error="; ".join(
                    filter(None, [r.get("error") or "the copy process died", release_error])))
            return dict(r)

    def cancel(self, dbg: str, operation: Any) -> None:
        op_id = _operation_id(operation)
        with data_ops.updating(op_id) as r:
            r["cancel"] = True
        self._settled(dbg, op_id)

    def destroy(self, dbg: str, operation: Any) -> None:
        op_id = _operation_id(operation)
        self.cancel(dbg, operation)
        deadline = time.monotonic() + DESTROY_WAIT
        while not self._settled(dbg, op_id)["complete"]:
            if time.monotonic() > deadline:
                from smapi.datapath import procs

                procs.terminate(int(data_ops.read(op_id)["pid"]))
            time.sleep(0.05)
        data_ops.remove(op_id)

    def ls(self, dbg: str) -> List[List[str]]:
        return [["CopyV1", op_id] for op_id in data_ops.ids()]
