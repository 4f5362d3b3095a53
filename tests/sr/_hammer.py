"""One of several processes hammering one SR (`python -m tests.sr._hammer PATH SEED STEPS`).

It creates, writes, snapshots, clones, resizes and destroys its own VDIs, keeps a byte model of each, checks
every read against the model, and prints the digests it expects the SR to hold for it.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Dict

from tests.sr.helpers import FileSR, MiB, sha


def main() -> None:
    path, seed, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    sr = FileSR(path)
    model: Dict[str, bytearray] = {}
    for _ in range(steps):
        op = rng.choice(["create", "write", "write", "snapshot", "clone", "destroy", "read", "resize"])
        if op == "create" or not model:
            vdi = sr.create(2 * MiB)
            model[vdi] = bytearray(2 * MiB)
            continue
        vdi = rng.choice(sorted(model))
        if op == "write":
            off = rng.randrange(0, len(model[vdi]) - 4096) // 512 * 512
            data = rng.randbytes(rng.choice([512, 4096, 65536]))[: len(model[vdi]) - off]
            sr.write(vdi, off, data)
            model[vdi][off: off + len(data)] = data
        elif op in ("snapshot", "clone"):
            new = getattr(sr, op)(vdi)
            model[new] = bytearray(model[vdi])
        elif op == "destroy" and len(model) > 1:
            sr.v("VDI.destroy", vdi=vdi)
            del model[vdi]
        elif op == "resize":
            size = len(model[vdi]) + MiB
            got = sr.v("VDI.resize", vdi=vdi, new_size=size)
            model[vdi].extend(bytes(got - len(model[vdi])))
        else:
            assert sr.read_all(vdi) == bytes(model[vdi]), f"worker {seed}: VDI {vdi} differs from its model"
    print(json.dumps({vdi: sha(bytes(data)) for vdi, data in model.items()}))


if __name__ == "__main__":
    main()
