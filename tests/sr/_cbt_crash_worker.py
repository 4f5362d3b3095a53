"""Runs one engine operation on a CBT-tracked VDI in its own process (`python -m tests.sr._cbt_crash_worker OP
PATH VDI`), so a fault point (`SMAPI_FAULT`) can kill it half-way."""

from __future__ import annotations

import sys

from tests.sr.helpers import FileSR, MiB


def main() -> None:
    op, path, vdi = sys.argv[1], sys.argv[2], sys.argv[3]
    sr = FileSR(path, sr=sys.argv[4])
    if op in ("snapshot", "clone"):
        getattr(sr, op)(vdi)
    elif op == "persist":
        sr.v("VDI.set_persistent", vdi=vdi, persistent=False)
    elif op == "resize":
        sr.v("VDI.resize", vdi=vdi, new_size=6 * MiB)
    elif op == "data-destroy":
        sr.v("VDI.data_destroy", vdi=vdi)
    elif op == "gc":
        sr.driver.gc(sr.sr)
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()
