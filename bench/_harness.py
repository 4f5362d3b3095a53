"""Benchmark harness shared by bench scripts: environment record, interleaved rounds, per-round ratios.

Protocol (docs/reference vhd-format §7): every contender of a scenario runs in the same process tree and directory,
interleaved A, B, A, B, ... for N rounds after one discarded warm-up each; results are ratios per round (library
versus the baseline of the *same* round) summarised by median and min, never absolute thresholds.
"""

import hashlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

Action = Callable[[], None]


@dataclass
class Contender:
    name: str
    run: Action  # the timed work
    prepare: Optional[Action] = None  # untimed, before every run (rebuild inputs, warm caches, ...)
    floor: float = 0.0  # seconds to subtract (process start-up of a subprocess contender)


@dataclass
class Scenario:
    title: str
    contenders: List[Contender]
    # (label, numerator contender, denominator contender, "time" | "throughput", target or None)
    ratios: List[tuple] = field(default_factory=list)
    times: Dict[str, List[float]] = field(default_factory=dict)


def run_scenario(sc: Scenario, rounds: int, warmup: bool = True, out=sys.stdout) -> Dict[str, List[float]]:
    """Run the contenders interleaved; return per-contender lists of seconds (floor subtracted, >= 1 us)."""
    times: Dict[str, List[float]] = {c.name: [] for c in sc.contenders}
    order = list(sc.contenders)
    for r in range(rounds + (1 if warmup else 0)):
        for c in order:
            if c.prepare:
                c.prepare()
            t0 = time.perf_counter()
            c.run()
            dt = time.perf_counter() - t0
            if warmup and r == 0:
                continue  # burn-in: first-touch allocation, cold page cache
            times[c.name].append(max(dt - c.floor, 1e-6))
        order = order[1:] + order[:1]  # rotate so no contender always runs first
    sc.times = times
    report(sc, out)
    return times


def ratio_series(sc: Scenario, num: str, den: str, kind: str) -> List[float]:
    a, b = sc.times[num], sc.times[den]
    # time ratio: a/b (lower is better for a); throughput ratio: b/a (higher is better for a)
    return [x / y for x, y in zip(a, b)] if kind == "time" else [y / x for x, y in zip(a, b)]


def report(sc: Scenario, out=sys.stdout) -> None:
    print(f"\n## {sc.title}", file=out)
    names = [c.name for c in sc.contenders]
    print("round  " + "  ".join(f"{n:>22}" for n in names), file=out)
    n = min(len(v) for v in sc.times.values())
    for i in range(n):
        print(f"{i + 1:>5}  " + "  ".join(f"{sc.times[k][i] * 1000:>19.1f} ms" for k in names), file=out)
    for label, num, den, kind, target in sc.ratios:
        series = ratio_series(sc, num, den, kind)
        print(f"  {label}: per round " + ", ".join(f"{x:.2f}" for x in series) +
              f" | median {statistics.median(series):.2f} min {min(series):.2f} max {max(series):.2f}"
              + (f" | target {target}" if target else ""), file=out)


def summary_rows(scenarios: Sequence[Scenario]) -> List[tuple]:
    rows = []
    for sc in scenarios:
        for label, num, den, kind, target in sc.ratios:
            s = ratio_series(sc, num, den, kind)
            verdict = ""
            if target:
                op, val = target.split(" ", 1)
                med = statistics.median(s)
                ok = med >= float(val) if op == ">=" else med <= float(val)
                verdict = "PASS" if ok else "MISS"
            rows.append((label, statistics.median(s), min(s), max(s), target or "", verdict))
    return rows


def print_summary(scenarios: Sequence[Scenario], out=sys.stdout) -> None:
    print("\n## Summary (ratios; time ratios <= target, throughput ratios >= target)", file=out)
    print(f"| {'ratio':<62} | {'median':>6} | {'min':>6} | {'max':>6} | {'target':>8} | {'':4} |", file=out)
    print(f"|{'-' * 64}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 10}|{'-' * 6}|", file=out)
    for label, med, mn, mx, target, verdict in summary_rows(scenarios):
        print(f"| {label:<62} | {med:>6.2f} | {mn:>6.2f} | {mx:>6.2f} | {target:>8} | {verdict:4} |", file=out)


# ------------------------------------------------------------------------------------------------ environment
def _mount_of(path: str) -> str:
    best, info = "", "?"
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, info = mnt, f"{fstype} on {mnt} ({dev}) {opts}"
    except OSError:
        pass
    return info


def environment(work_dir: str) -> Dict[str, str]:
    env = {
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "cpus": str(os.cpu_count()),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "work dir": f"{work_dir}: {_mount_of(work_dir)}",
        "root (cold cache possible)": str(os.geteuid() == 0),
    }
    try:
        with open("/proc/meminfo") as f:
            env["ram"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    qemu = shutil.which("qemu-img")
    if qemu:
        env["qemu-img"] = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return env


def print_env(env: Dict[str, str], title: str = "Environment", out=sys.stdout) -> None:
    print(f"## {title}", file=out)
    for k, v in env.items():
        print(f"- {k}: {v}", file=out)


def peak_rss_mib() -> float:
    """Peak RSS of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------ helpers
def sh(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def process_floor(cmd: Sequence[str], n: int = 5) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(list(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def warm(*paths: str) -> None:
    """Pull files into the page cache (the 'warm' regime)."""
    buf = bytearray(8 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def sha256_file(path: str, length: Optional[int] = None) -> str:
    h = hashlib.sha256()
    buf = bytearray(8 << 20)
    mv = memoryview(buf)
    left = length
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if left is not None:
                n = min(n, left)
                left -= n
            h.update(mv[:n])
            if left == 0:
                break
    return h.hexdigest()


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pick_work_dir(repo: str) -> str:
    """A scratch parent on the same disk as the repo (not tmpfs): first-touch and sync costs must be real."""
    repo_dev = os.stat(repo).st_dev
    for cand in ("/var/tmp", os.path.dirname(os.path.abspath(repo))):
        try:
            if os.stat(cand).st_dev == repo_dev and "tmpfs" not in _mount_of(cand) and os.access(cand, os.W_OK):
                return cand
        except OSError:
            continue
    return os.path.dirname(os.path.abspath(repo))
