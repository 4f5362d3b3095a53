"""Cold start of a per-verb executable against a bare interpreter, measured in the same run.

xapi forks one executable per storage call, so `Plugin.Query --json` start-up is paid on every call. The
target is at most 3x `python3 -c pass` (the same interpreter binary). Contenders run interleaved, round after
round, and the report gives the per-round ratio's median and min, not absolute thresholds. It also gives the
CPU time (user + system) the processes used: on a shared, loaded machine wall time mostly measures the wait for a
core, while CPU time still compares the work each start-up does.

    python bench/coldstart.py [--rounds 7] [--calls 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from smapi.rpc.plugin_dir import install_plugin  # noqa: E402

#: the driver whose executables are timed: the file SR, the driver xapi would actually fork
DRIVER = "smapi.drivers.file:FileDriver"
REQUEST = json.dumps({"dbg": "bench"}) + "\n"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_calls(argv: List[str], stdin: str, calls: int) -> Tuple[float, float]:
    """(wall, CPU) seconds per call, averaged over `calls` sequential process starts."""
    start, cpu_start = time.perf_counter(), _children_cpu()
    for _ in range(calls):
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{argv[0]} failed: {p.stdout} {p.stderr}")
    return (time.perf_counter() - start) / calls, (_children_cpu() - cpu_start) / calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20, help="process starts per contender per round")
    ap.add_argument("--driver", default=DRIVER, help="driver to install (default: the file SR)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SMAPI_EXAMPLE_STATE"] = os.path.join(tmp, "state")
        os.environ["SMAPI_RUN_DIR"] = os.path.join(tmp, "run")
        # Each call writes its call-log line, as on a host, but into this run's directory, not /var/log/smapi.
        os.environ["SMAPI_LOG_FILE"] = os.path.join(tmp, "smapi.log")
        plugin = os.path.join(tmp, "plugin")
        install_plugin(args.driver, plugin)
        query = os.path.join(plugin, "Plugin.Query")
        # Correctness gate before timing: the executable answers the query.
        out = subprocess.run([query, "--json"], input=REQUEST, capture_output=True, text=True, check=True).stdout
        assert json.loads(out)["plugin"], out

        contenders: Dict[str, Callable[[], Tuple[float, float]]] = {
            "python -c pass": lambda: timed_calls([sys.executable, "-c", "pass"], "", args.calls),
            "python -S -c pass": lambda: timed_calls([sys.executable, "-S", "-c", "pass"], "", args.calls),
            "Plugin.Query --json": lambda: timed_calls([query, "--json"], REQUEST, args.calls),
        }
        for fn in contenders.values():  # warm-up round, discarded
            fn()
        samples: Dict[str, List[Tuple[float, float]]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                samples[name].append(fn())

    print(f"cold start of {args.driver}, {args.rounds} rounds x {args.calls} calls, interpreter {sys.executable}")
    for name, values in samples.items():
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        print(f"  {name:22s} median {statistics.median(wall) * 1000:6.1f} ms  min {min(wall) * 1000:6.1f} ms"
              f"   cpu median {statistics.median(cpu) * 1000:6.1f} ms")
    for kind, index in (("", 0), ("cpu ", 1)):
        ratios = [q[index] / p[index] for q, p in zip(samples["Plugin.Query --json"], samples["python -c pass"])]
        print(f"  {kind}ratio Plugin.Query / python -c pass: median {statistics.median(ratios):.2f}x  "
              f"min {min(ratios):.2f}x  (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
