"""Several processes hammer one SR at once; afterwards the SR holds exactly what each believes it made."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any, Dict, List

from smapi.rpc.plugin_dir import install_plugin
from smapi.testing.client import SRClient
from smapi.testing.conformance._workers import worker_main
from smapi.testing.features import needs

WORKERS = 3
STEPS = 14


@needs("VDI_SNAPSHOT", "VDI_CLONE", "open_vdi", "gc")
def test_concurrent_workers_leave_a_consistent_sr(sr: SRClient, tmp_path: Path) -> None:
    existing = sr.create(2 << 20, name_label="bystander")["vdi"]
    sr.write(existing, 4096, b"bystander" * 1000)
    bystander = sr.digest(existing)
    plugin = str(tmp_path / "plugin")
    install_plugin(sr.sut.driver_spec, plugin, api="storage")
    env = {k: os.environ[k] for k in sr.sut.env}
    # spawn: each worker is a fresh interpreter, like the separate processes a toolstack starts;
    # the last worker calls its verbs through per-verb executables, so even more processes are involved.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=worker_main, args=(barrier, queue, sr.sut.driver_spec, sr.sr, env, seed, STEPS,
                                              plugin if seed == WORKERS - 1 else None))
        for seed in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = [queue.get(timeout=150) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [err for _, _, err in outcomes if err]
    assert not errors, "a worker failed:\n" + "\n".join(errors)
    results: List[Dict[str, Any]] = [r for _, r, _ in sorted(outcomes, key=lambda o: o[0])]
    believed: Dict[str, str] = {}
    for r in results:
        assert not set(believed) & set(r["digests"]), "two workers were given the same VDI"
        believed.update(r["digests"])
    believed[existing] = bystander

    def check(when: str) -> None:
        sr.reload()
        scanned = sr.scan()
        assert set(scanned) == set(believed), f"{when}: scan disagrees with the workers"
        for r in results:
            for vdi, size in r["sizes"].items():
                assert scanned[vdi]["virtual_size"] == size, f"{when}: size of {vdi}"
            for snap, of in r["snapshots"].items():
                assert scanned[snap]["is_a_snapshot"] and scanned[snap]["snapshot_of"] == of, f"{when}: {snap}"
        digests = sr.digests()
        bad = sorted(v for v in believed if digests[v] != believed[v])
        assert not bad, f"{when}: contents differ from the workers' models for {bad}"

    check("after the workers")
    sr.gc()
    check("after gc")
