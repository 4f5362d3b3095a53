"""The detached process that performs one Data.copy: `python -m smapi.core.data_worker <operation id>`.

It reads its operation record (`smapi.core.data_ops`), copies the ranges from the local export to the remote
one, writes its progress back to the record as it goes, honours a cancel request (the record's `cancel` flag,
or SIGTERM), and at the end releases the private datapath the copy was served on and marks the record complete.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import List, Optional

from smapi.core import data_ops

#: seconds between progress writes and cancel checks (the record is a file; chunks come faster than that)
POLL = 0.1


class _Copy:
    def __init__(self, op_id: str) -> None:
        self.op_id = op_id
        self.stop_requested = False
        self._last = 0.0
        self._cancel = False

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < POLL and done < total:
            return
        self._last = now
        with data_ops.updating(self.op_id) as record:
            record["done"] = done
            self._cancel = bool(record.get("cancel"))

    def cancelled(self) -> bool:
        return self.stop_requested or self._cancel


def run(op_id: str) -> int:
    from smapi.core.nbd_copy import connect, copy_ranges

    record = data_ops.read(op_id)
    job = _Copy(op_id)
    signal.signal(signal.SIGTERM, lambda *_: setattr(job, "stop_requested", True))
    error = ""
    try:
        with connect(record["local"], "uri") as src, connect(record["remote"]) as dst:
            ranges = [(int(o), int(n)) for o, n in record["ranges"]]
            done = copy_ranges(src, dst, ranges, progress=job.progress, cancelled=job.cancelled)
        if job.cancelled():
            error = "cancelled"
    except Exception as e:  # any failure ends the operation as failed, with the reason for Data.stat
        done = None
        error = f"{type(e).__name__}: {e}"
    release_error = data_ops.release_datapath(record)
    with data_ops.updating(op_id) as final:
        if done is not None:
            final["done"] = done
        final["complete"] = True
        final["failed"] = bool(error)
        final["error"] = "; ".join(filter(None, [error, release_error or ""]))
    return 0 if not error else 1


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m smapi.core.data_worker <operation id>", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
