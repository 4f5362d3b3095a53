"""Data operations (copies) recorded under the run directory, so every per-verb process sees the same ones.

Data.copy is called by one process, Data.stat / cancel / destroy / ls by others, and the copy itself runs in a
detached worker (`python -m smapi.core.data_worker <record>`). They meet in one JSON record per operation:

    $SMAPI_RUN_DIR/data/<id>.json
        {"id", "kind": "copy", "sr", "vdi", "dp", "driver", "local", "remote", "ranges": [[offset, length]...],
         "total", "done", "pid", "complete", "failed", "error", "cancel"}

Every update is a read-modify-write under the record's lock, and every write replaces the file atomically, so a
reader never sees half a record. A worker that died without marking its record complete (killed, host crash)
is noticed by the next reader: the operation is then failed.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

from smapi.datapath import procs, runtime
from smapi.interface.errors import Invalid_argument

WORKER_MODULE = "smapi.core.data_worker"


def data_dir() -> str:
    return os.path.join(os.environ.get("SMAPI_RUN_DIR") or "/run/smapi", "data")


def record_path(op_id: str) -> str:
    if not op_id or runtime.file_name(op_id) != op_id:
        raise Invalid_argument("operation", f"not an operation key this host hands out: {op_id!r}")
    return os.path.join(data_dir(), op_id + ".json")


@contextmanager
def updating(op_id: str) -> Iterator[Dict[str, Any]]:
    """The operation's record, locked; changes made to it are written back."""
    path = record_path(op_id)
    with runtime.locked(path + ".lock"):
        record = runtime.read_json(path)
        if record is None:
            raise Invalid_argument("operation", f"no operation {op_id!r} on this host (destroyed, or never made)")
        yield record
        runtime.write_json(path, record)


def read(op_id: str) -> Dict[str, Any]:
    record = runtime.read_json(record_path(op_id))
    if record is None:
        raise Invalid_argument("operation", f"no operation {op_id!r} on this host (destroyed, or never made)")
    return record


def create(record: Dict[str, Any]) -> None:
    runtime.ensure_dir(data_dir())
    path = record_path(record["id"])
    with runtime.locked(path + ".lock"):
        runtime.write_json(path, record)


def remove(op_id: str) -> None:
    path = record_path(op_id)
    with runtime.locked(path + ".lock"):
        runtime.remove(path)
    runtime.remove(path + ".lock")


def ids() -> List[str]:
    try:
        names = os.listdir(data_dir())
    except FileNotFoundError:
        return []
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))


def worker_alive(record: Dict[str, Any]) -> bool:
    pid = record.get("pid")
    return isinstance(pid, int) and procs.matches(pid, os.path.basename(sys.executable), WORKER_MODULE)


def abandoned(record: Dict[str, Any]) -> bool:
    """An operation whose worker is gone without saying it finished."""
    return not record["complete"] and record.get("pid") is not None and not worker_alive(record)


def progress(record: Dict[str, Any]) -> Optional[float]:
    total = record.get("total") or 0
    return 1.0 if total == 0 and record["complete"] and not record["failed"] else (
        min(1.0, record.get("done", 0) / total) if total else 0.0)


def release_datapath(record: Dict[str, Any]) -> Optional[str]:
    """Release the private datapath a copy read its volume through, with the driver of the volume's SR (the
    process doing it may have been started for another driver). Returns what went wrong, if anything."""
    from smapi.core.driver import load_driver
    from smapi.core.v3_local import release

    driver = load_driver(record["driver"])
    try:
        release(lambda verb, **args: driver.call("storage", verb, dbg=f"Data.copy/{record['id']}", **args),
                record["dp"], record["sr"], record["vdi"])
    except Exception as e:  # reported in the record: the copy's own outcome still stands
        return f"releasing the datapath {record['dp']}: {type(e).__name__}: {e}"
    return None
