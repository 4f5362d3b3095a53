"""What sanlock leases cost the verbs of a shared NFS SR: per-verb latency with and without them, in one run.

    python bench/nfs_leases.py [--rounds 8] [--nfs 4|3] [--io-timeout 1]

One real nfs-ganesha export (tests/nfs/factory: v4.1 on loopback, or v3 in a network namespace) reached through
smapi's FUSE NFS client, one SR, one sanlock daemon for this process (one host). Contenders per verb, interleaved
per round (bench/_harness.py):

    leases     the NFS SR as shipped: SR/VDI leases around every metadata step, the activation lease held by the
               datapath server, the SR document fenced by the SR lease version
    no-leases  the same SR and process with the pool-wide leases switched off in this process only (host-local
               flocks only, as a file SR; this is what a single host would pay without sanlock)

Verbs: VDI.create (1 MiB), VDI.snapshot of a fresh VDI, VDI.activate of an attached VDI (its nbdkit starts and,
with leases, takes `act-<vdi>` for its pid). The collector is off (SMAPI_GC=off): background work is not the
verb's latency. Ratios are leases / no-leases of the same round; target 1.3.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from _harness import Contender, Scenario, environment, print_env, print_summary, run_scenario  # noqa: E402

TARGET = "<= 1.3"
LEASES = {"on": True}


def switchable_leases() -> None:
    """Make the NFS substrate's pool-wide leases follow LEASES["on"] (this process only)."""
    import smapi.drivers.nfs.substrate as nfs
    import smapi.sr.sanlock.shared as shared

    pool_wide = shared.pool_wide
    sub = nfs.NfsSubstrate
    act, elsewhere, prepare = sub.activation_lease, sub.active_elsewhere, sub.prepare_activation
    shared.pool_wide = lambda name: LEASES["on"] and pool_wide(name)  # type: ignore[assignment]
    sub.activation_lease = (  # type: ignore[method-assign]
        lambda self, vdi, *, readonly: act(self, vdi, readonly=readonly) if LEASES["on"] else None)
    sub.active_elsewhere = (  # type: ignore[method-assign]
        lambda self, vdi: elsewhere(self, vdi) if LEASES["on"] else None)
    sub.prepare_activation = (  # type: ignore[method-assign]
        lambda self, vdi: prepare(self, vdi) if LEASES["on"] else None)


class Bench:
    def __init__(self, nfs_version: str) -> None:
        from smapi.core.driver import load_driver
        from tests.nfs.factory import device_config, shared_server

        server = shared_server(nfs_version)
        os.environ.update(server.client_env())
        self.export_dir = server.export_dir
        sub = f"bench-{uuid.uuid4().hex[:8]}"
        os.makedirs(os.path.join(server.export_dir, sub))
        self.dc = device_config(server, f"{server.serverpath}/{sub}", "3" if nfs_version == "3" else "4.1")
        self.sr = str(uuid.uuid4())
        self.dispatcher = load_driver("smapi.drivers.nfs:NfsDriver").dispatcher("storage")
        self.call("SR.create", sr=self.sr, device_config=self.dc, physical_size=0)
        self.call("SR.attach", sr=self.sr, device_config=self.dc)
        self.active: List[str] = []

    def call(self, verb: str, **args: Any) -> Any:
        return self.dispatcher.call(verb, {"dbg": "bench", **args})

    def create(self) -> str:
        return str(self.call("VDI.create", sr=self.sr, vdi_info={"virtual_size": 1 << 20, "name_label": "b"})["vdi"])

    def scenarios(self) -> List[Scenario]:
        fresh: Dict[str, str] = {}

        def mode(on: bool) -> None:
            LEASES["on"] = on

        stat: Dict[str, Any] = {}

        def prepare_snapshot(on: bool) -> None:
            mode(on)
            fresh["vdi"] = self.create()
            stat["info"] = self.call("VDI.stat", sr=self.sr, vdi=fresh["vdi"])  # not the verb timed

        def snapshot() -> None:
            self.call("VDI.snapshot", sr=self.sr, vdi_info=stat["info"])

        def prepare_activate(on: bool) -> None:
            self.stop_active()
            mode(on)
            fresh["vdi"] = self.create()
            self.call("VDI.attach", sr=self.sr, dp="bench", vdi=fresh["vdi"], read_write=True)
            self.active.append(fresh["vdi"])

        def activate() -> None:
            self.call("VDI.activate", sr=self.sr, dp="bench", vdi=fresh["vdi"])

        out = []
        for title, prep, run in (("VDI.create", mode, self.create), ("VDI.snapshot", prepare_snapshot, snapshot),
                                 ("VDI.activate", prepare_activate, activate)):
            out.append(Scenario(f"NFS SR: {title}", [
                Contender("leases", run, prepare=lambda p=prep: p(True)),  # type: ignore[misc]
                Contender("no-leases", run, prepare=lambda p=prep: p(False)),  # type: ignore[misc]
            ], ratios=[(f"{title} leases/no-leases", "leases", "no-leases", "time", TARGET)]))
        return out

    def stop_active(self) -> None:
        while self.active:
            vdi = self.active.pop()
            self.call("VDI.deactivate", sr=self.sr, dp="bench", vdi=vdi)
            self.call("VDI.detach", sr=self.sr, dp="bench", vdi=vdi)

    def close(self) -> None:
        LEASES["on"] = True
        self.stop_active()
        self.call("SR.detach", sr=self.sr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--nfs", choices=("3", "4"), default="4")
    ap.add_argument("--io-timeout", default="1", help="sanlock io_timeout (s): lease timings, not lease I/O cost")
    args = ap.parse_args()
    from tests.nfs.factory import nfs_unavailable, session_sanlock_env, stop_all_servers

    why = nfs_unavailable()
    if why:
        print(f"skipped: {why}")
        return 0
    os.environ.update({"SMAPI_RUN_DIR": tempfile.mkdtemp(prefix="smapi-bench-run-"), "SMAPI_GC": "off",
                       "SMAPI_NFS_CLIENT": "fuse", **session_sanlock_env(),
                       "SMAPI_SANLOCK_IO_TIMEOUT": args.io_timeout})
    switchable_leases()
    bench = Bench(args.nfs)
    try:
        print_env(environment(bench.export_dir))
        scenarios = bench.scenarios()
        for sc in scenarios:
            run_scenario(sc, args.rounds)
        print_summary(scenarios)
    finally:
        bench.close()
        from tests.nfs.factory import unmount_all

        unmount_all(os.environ["SMAPI_RUN_DIR"])
        stop_all_servers()
        shutil.rmtree(os.environ["SMAPI_RUN_DIR"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
