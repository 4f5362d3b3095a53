"""Runs SR verbs in a loop until killed (`python -m tests.hostile._churn PATH SEED`): the victim of the random-kill
test, which SIGKILLs it at arbitrary moments rather than at the named fault points."""

from __future__ import annotations

import random
import sys

from tests.sr.helpers import FileSR, MiB


def main() -> None:
    sr = FileSR(sys.argv[1])
    rng = random.Random(int(sys.argv[2]))
    while True:
        vdis = sorted(sr.scan())
        choice = rng.random()
        if not vdis or choice < 0.25:
            vdi = sr.create(2 * MiB, name_label="churn")
            sr.write(vdi, rng.randrange(0, MiB), bytes([rng.randrange(256)]) * 65536)
        elif choice < 0.45:
            sr.snapshot(rng.choice(vdis))
        elif choice < 0.6:
            vdi = rng.choice(vdis)
            sr.v("VDI.resize", vdi=vdi, new_size=sr.stat(vdi)["virtual_size"] + MiB)
        elif choice < 0.75:
            sr.write(rng.choice(vdis), rng.randrange(0, MiB), bytes([rng.randrange(256)]) * 4096)
        elif choice < 0.95:
            sr.v("VDI.destroy", vdi=rng.choice(vdis))
        else:
            sr.v("VDI.set_name_label", vdi=rng.choice(vdis), new_name_label=f"n{rng.random()}")


if __name__ == "__main__":
    main()
