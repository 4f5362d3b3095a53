"""Worker processes of the concurrency test (a module of its own so `spawn` can import it by name).

Each worker owns the VDIs it creates and keeps a byte model of each; it returns what it believes the SR holds
for it. Workers share one SR, so what they stress is the SR-wide state: the metadata document, chains being
collected while other workers write, and datapath-independent locking.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any, Dict, Optional

from smapi.core.driver import load_driver

MiB = 1 << 20


def run_worker(driver_spec: str, sr: str, env: Dict[str, str], seed: int, steps: int,
               exec_dir: Optional[str] = None) -> Dict[str, Any]:
    """Run `steps` random operations; verbs go through per-verb executables when `exec_dir` is given."""
    os.environ.update(env)
    driver = load_driver(driver_spec)
    dispatcher = driver.dispatcher("storage")
    if exec_dir is not None:
        from smapi.rpc.client import connect

        client = connect("exec://" + exec_dir)

        def call(verb: str, **args: Any) -> Any:
            return client.call(verb, dbg=f"worker{seed}", sr=sr, **args)
    else:

        def call(verb: str, **args: Any) -> Any:
            return dispatcher.call(verb, {"dbg": f"worker{seed}", "sr": sr, **args})

    # the data hook is looked up as the conftest does, without importing pytest here
    places = [driver, getattr(driver, "engine", None), *driver.implementations("storage").values()]
    open_vdi = next(p.open_vdi for p in places if callable(getattr(p, "open_vdi", None)))

    rng = random.Random(seed)
    model: Dict[str, bytearray] = {}
    snapshots: Dict[str, str] = {}  # snapshot -> what it is a snapshot of
    for step in range(steps):
        kind = rng.choice(["create", "write", "write", "snapshot", "clone", "destroy"]) if model else "create"
        if kind == "create":
            info = call("VDI.create", vdi_info={"virtual_size": MiB, "name_label": f"w{seed}-{step}"})
            model[info["vdi"]] = bytearray(info["virtual_size"])
            continue
        vdi = rng.choice(sorted(model))
        if kind == "write":
            length = rng.randint(1, 64 * 1024)
            offset = rng.randint(0, len(model[vdi]) - length)
            data = rng.randbytes(length)
            h = open_vdi(sr, vdi, writable=True)
            try:
                h.write(offset, data)
                h.flush()
            finally:
                h.close()
            model[vdi][offset:offset + length] = data
        elif kind in ("snapshot", "clone"):
            info = call(f"VDI.{kind}", vdi_info=call("VDI.stat", vdi=vdi))
            model[info["vdi"]] = bytearray(model[vdi])
            if kind == "snapshot":
                snapshots[info["vdi"]] = vdi
        else:
            call("VDI.destroy", vdi=vdi)
            del model[vdi]
            snapshots.pop(vdi, None)
    return {
        "digests": {vdi: hashlib.sha256(bytes(data)).hexdigest() for vdi, data in model.items()},
        "sizes": {vdi: len(data) for vdi, data in model.items()},
        "snapshots": snapshots,
    }


def worker_main(barrier: Any, results: Any, driver_spec: str, sr: str, env: Dict[str, str], seed: int, steps: int,
                exec_dir: Optional[str]) -> None:
    """Process entry: start together with the others (overlap is the point), report the result or the error."""
    barrier.wait(timeout=60)
    try:
        results.put((seed, run_worker(driver_spec, sr, env, seed, steps, exec_dir), None))
    except BaseException as e:  # the parent must hear about any failure, typed or not
        import traceback

        results.put((seed, None, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
