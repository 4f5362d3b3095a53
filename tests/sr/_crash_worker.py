"""Runs one engine operation in its own process (`python -m tests.sr._crash_worker OP PATH ARGS...`), so a
fault point (`SMAPI_FAULT`) can kill it half-way like a power cut would."""

from __future__ import annotations

import json
import sys

from tests.sr.helpers import FileSR, MiB


def main() -> None:
    op, path, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sr = FileSR(path)
    if op in ("snapshot", "clone"):
        getattr(sr, op)(args["vdi"])
    elif op == "compose":
        sr.v("VDI.compose", vdi1=args["vdi1"], vdi2=args["vdi2"])
    elif op == "resize":
        sr.v("VDI.resize", vdi=args["vdi"], new_size=args["size"])
    elif op == "destroy":
        sr.v("VDI.destroy", vdi=args["vdi"])
    elif op == "persist":
        sr.v("VDI.set_persistent", vdi=args["vdi"], persistent=False)
    elif op == "create":
        sr.create(2 * MiB)
    elif op in ("coalesce", "leaf-coalesce"):
        sr.driver.gc(sr.sr)
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()
