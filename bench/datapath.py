"""Benchmark of the NBD datapath (nbdkit + smapi's Python plugin over a VHD chain) against nbdkit's own ``file``
plugin serving a raw copy of the same data.

    python bench/datapath.py [--size 1G | --smoke] [--rounds 5] [--depths 1,10] [--dir DIR]
    python bench/datapath.py --fio [--size 256M] [--depths 1,10,30] [--runtime 2] [--cache warm,cold]

``--fio`` runs the fio ``nbd`` engine scenarios of bench/datapath_fio.py instead (random and sequential I/O at
several queue depths, against nbdkit ``file`` on raw and qemu-nbd on an equal qcow2 chain).

Scenarios, per chain depth: read the whole export (``nbdcopy URI null:``) and write the whole export
(``nbdcopy src.raw URI``, allocating: a fresh empty leaf versus a fresh sparse raw file, recreated untimed before
every round). The datapath contender is the real one (``smapi.datapath.NbdServer``); the baseline is
``nbdkit file``. Both use the same client and options, run interleaved in one process tree, and every export is
checksummed before timing. Results are throughput ratios (datapath / file plugin) per round, median and min.

Sync behaviour: nbdcopy (1.14) sends no flush unless given ``--flush``, so by default neither side makes the data
durable inside the timed run (the datapath commits its metadata when the server stops, untimed). ``--flush``
times durable writes instead (nbdcopy flushes at the end: the file plugin's fdatasync, the datapath's commit).
Every write round starts from a settled host: after the untimed re-creation of the target, ``sync`` writes back
and commits what earlier rounds left behind. Without it the rounds were not independent, and not alike: the
datapath's stop syncs its leaf, whose removal then frees on-disk blocks (journal commit, discards) during the
next timed run, while the file plugin's truncated target never reached the disk at all.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from _harness import (  # noqa: E402
    Contender,
    Scenario,
    environment,
    pick_work_dir,
    print_env,
    print_summary,
    run_scenario,
)

import smapi.vhd as vhd  # noqa: E402
from smapi.datapath import ImageSpec, NbdServer  # noqa: E402
from smapi.datapath.nbdclient import NbdClient  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
BLOCK = 2 * MiB
TARGET = ">= 0.7"
NBDCOPY = shutil.which("nbdcopy")
NBDKIT = shutil.which("nbdkit")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    t = text.strip().upper().rstrip("B").rstrip("I")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


# ------------------------------------------------------------------------------------------------ data
def gen_raw(path: str, size: int, seed: int) -> str:
    """Random data in every block (no holes: neither side can skip reads through extents). Returns sha256."""
    r = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // BLOCK):
            buf = r.randbytes(BLOCK)
            f.write(buf)
            h.update(buf)
    return h.hexdigest()


def build_chain(w: str, raw: str, depth: int, size: int) -> str:
    """A chain of ``depth`` images whose disk equals ``raw``: the base holds everything, each overlay rewrites (with
    the same bytes) every depth-th block, so reads are spread over all levels."""
    base = os.path.join(w, f"c{depth}_0.vhd")
    vhd.import_raw(raw, base)
    leaf = base
    with open(raw, "rb") as src:
        for k in range(1, depth):
            child = os.path.join(w, f"c{depth}_{k}.vhd")
            vhd.snapshot(leaf, child)
            with vhd.open_chain(child, writable=True) as c, c.batch():
                for blk in range(k, size // BLOCK, depth):
                    src.seek(blk * BLOCK)
                    c.write(blk * BLOCK, src.read(BLOCK))
            leaf = child
    return leaf


def export_sha(uri: str) -> str:
    """sha256 of an export's whole content (nbdcopy to a pipe)."""
    h = hashlib.sha256()
    with subprocess.Popen([NBDCOPY, uri, "-"], stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        while True:
            chunk = p.stdout.read(8 * MiB)
            if not chunk:
                break
            h.update(chunk)
    if p.returncode != 0:
        raise RuntimeError(f"nbdcopy {uri} failed")
    return h.hexdigest()


def check(label: str, got: str, want: str) -> None:
    if got != want:
        raise SystemExit(f"checksum mismatch for {label}: {got} != {want}")
    print(f"- checksum ok: {label}")


# ------------------------------------------------------------------------------------------------ servers
class FilePluginServer:
    """The baseline: ``nbdkit file`` on a Unix socket, a child of this process."""

    def __init__(self, w: str, name: str, path: str) -> None:
        self.sock = os.path.join(w, f"{name}.sock")
        self.path = path
        self.proc: Optional[subprocess.Popen] = None

    @property
    def uri(self) -> str:
        return f"nbd+unix:///?socket={self.sock}"

    def start(self) -> None:
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen([NBDKIT, "-f", "-U", self.sock, "file", f"file={self.path}"],
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with NbdClient(self.sock):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("nbdkit file plugin did not start") from None
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None
        if os.path.exists(self.sock):
            os.unlink(self.sock)


class DatapathServer:
    """The contender: the real datapath server of one image."""

    def __init__(self, run_dir: str, export: str, image: ImageSpec, readonly: bool) -> None:
        self.server = NbdServer(run_dir)
        self.export, self.image, self.readonly = export, image, readonly
        self.uri = ""

    def start(self) -> None:
        self.uri = self.server.start(self.export, self.image, readonly=self.readonly).uri

    def stop(self) -> None:
        self.server.stop(self.export)


# ------------------------------------------------------------------------------------------------ scenarios
def nbdcopy(src: str, dst: str, *opts: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run([NBDCOPY, *opts, src, dst], check=True)

    return run


def settle() -> None:
    """Write back and commit everything pending on the host, so no timed run pays for an earlier one."""
    os.sync()


class Bench:
    def __init__(self, w: str, size: int, rounds: int, flush: bool = False) -> None:
        self.w, self.size, self.rounds = w, size, rounds
        self.copy_opts = ("--flush",) if flush else ()
        self.run_dir = os.path.join(w, "run")
        self.raw = os.path.join(w, "data.raw")
        self.src = os.path.join(w, "src.raw")
        self.scenarios: List[Scenario] = []
        self.raw_sha = gen_raw(self.raw, size, seed=1)
        self.src_sha = gen_raw(self.src, size, seed=2)

    def read(self, depth: int) -> None:
        leaf = build_chain(self.w, self.raw, depth, self.size)
        dp = DatapathServer(self.run_dir, f"read{depth}", ImageSpec("vhd", leaf), readonly=True)
        base = FilePluginServer(self.w, f"file-read{depth}", self.raw)
        dp.start()
        base.start()
        try:
            check(f"datapath read export, depth {depth}", export_sha(dp.uri), self.raw_sha)
            check("file plugin read export", export_sha(base.uri), self.raw_sha)
            sc = Scenario(f"read {self.size >> 20} MiB, VHD chain depth {depth} (nbdcopy URI null:)", [
                Contender("datapath", nbdcopy(dp.uri, "null:")),
                Contender("file plugin", nbdcopy(base.uri, "null:")),
            ])
            sc.ratios.append((f"read throughput, depth {depth}: datapath / nbdkit file", "datapath", "file plugin",
                              "throughput", TARGET))
            run_scenario(sc, self.rounds)
            self.scenarios.append(sc)
        finally:
            dp.stop()
            base.stop()

    def write(self, depth: int) -> None:
        """Allocating writes of the whole disk into a fresh leaf (over depth-1 parents) vs a fresh sparse raw."""
        parent = build_chain(self.w, self.raw, depth - 1, self.size) if depth > 1 else None
        leaf = os.path.join(self.w, f"w{depth}.vhd")
        target = os.path.join(self.w, f"w{depth}.raw")
        dp = DatapathServer(self.run_dir, f"write{depth}", ImageSpec("vhd", leaf), readonly=False)
        base = FilePluginServer(self.w, f"file-write{depth}", target)

        def fresh_leaf() -> None:
            dp.stop()
            if os.path.exists(leaf):
                os.unlink(leaf)
            if parent:
                vhd.snapshot(parent, leaf)
            else:
                vhd.create_dynamic(leaf, self.size)
            dp.start()
            settle()

        def fresh_raw() -> None:
            base.stop()
            if os.path.exists(target):
                os.unlink(target)  # removed like the leaf (not truncated in place)
            with open(target, "wb") as f:
                f.truncate(self.size)
            base.start()
            settle()

        try:
            fresh_leaf()
            fresh_raw()
            nbdcopy(self.src, dp.uri)()
            nbdcopy(self.src, base.uri)()
            check(f"datapath write export, depth {depth}", export_sha(dp.uri), self.src_sha)
            check("file plugin write export", export_sha(base.uri), self.src_sha)
            dp.stop()
            with vhd.open_chain(leaf) as c:  # and what landed in the VHD itself
                h = hashlib.sha256()
                for off in range(0, c.size, BLOCK):
                    h.update(c.read(off, min(BLOCK, c.size - off)))
            check(f"VHD leaf after write, depth {depth}", h.hexdigest(), self.src_sha)
            how = " ".join(("nbdcopy",) + self.copy_opts + ("src URI",))
            label = "write + flush" if self.copy_opts else "write"
            sc = Scenario(f"{label} {self.size >> 20} MiB into a fresh leaf, chain depth {depth} ({how})", [
                Contender("datapath", lambda: nbdcopy(self.src, dp.uri, *self.copy_opts)(), prepare=fresh_leaf),
                Contender("file plugin", lambda: nbdcopy(self.src, base.uri, *self.copy_opts)(), prepare=fresh_raw),
            ])
            sc.ratios.append((f"{label} throughput, depth {depth}: datapath / nbdkit file", "datapath",
                              "file plugin", "throughput", TARGET))
            run_scenario(sc, self.rounds)
            self.scenarios.append(sc)
        finally:
            dp.stop()
            base.stop()


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G", help="disk size (default 1G)")
    ap.add_argument("--smoke", action="store_true", help="tiny run: 8 MiB, 1 round, depths 1 and 3")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per scenario (default 5, smoke 1)")
    ap.add_argument("--depths", default=None, help="comma-separated chain depths (default 1,10)")
    ap.add_argument("--only", default=None, help="comma-separated scenarios (default read,write; with --fio: "
                    "randread,seqread,randwrite,alloc)")
    ap.add_argument("--dir", default=None, help="scratch parent directory (default: same disk as the repo)")
    ap.add_argument("--flush", action="store_true", help="write scenarios: nbdcopy --flush (time durable writes)")
    ap.add_argument("--fio", action="store_true", help="fio nbd-engine scenarios (bench/datapath_fio.py)")
    ap.add_argument("--runtime", type=float, default=2.0, help="--fio: seconds per fio run (default 2)")
    ap.add_argument("--cache", default="warm,cold", help="--fio: cache modes (default warm,cold)")
    args = ap.parse_args(argv)
    if not (NBDCOPY and NBDKIT):
        print("nbdkit / nbdcopy not installed (ci/apt-packages.txt)", file=sys.stderr)
        return 2
    if args.fio:
        return fio_main(args)
    size = parse_size("8M" if args.smoke and args.size == "1G" else args.size)
    size = max(BLOCK * 2, size // BLOCK * BLOCK)
    rounds = args.rounds or (1 if args.smoke else 5)
    depths = [int(d) for d in (args.depths or ("1,3" if args.smoke else "1,10")).split(",")]
    only = set((args.only or "read,write").split(","))
    parent = args.dir or pick_work_dir(REPO)
    w = tempfile.mkdtemp(prefix="dp-bench-", dir=parent)
    env = environment(w)
    env.update({"dataset": f"{size >> 20} MiB", "rounds": str(rounds), "depths": ",".join(map(str, depths)),
                "nbdkit": subprocess.run([NBDKIT, "--version"], capture_output=True, text=True).stdout.strip(),
                "client": f"nbdcopy ({'--flush' if args.flush else 'default options'}, same for both)"})
    print("# smapi datapath benchmark (NBD: smapi plugin vs nbdkit file plugin)")
    print_env(env)
    try:
        b = Bench(w, size, rounds, flush=args.flush)
        for depth in depths:
            if "read" in only:
                b.read(depth)
            if "write" in only:
                b.write(depth)
        print_summary(b.scenarios)
        print(f"\nloadavg after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        from smapi.datapath.nbd import cleanup_stale

        cleanup_stale(os.path.join(w, "run"))
        shutil.rmtree(w, ignore_errors=True)
    return 0


def fio_main(args: argparse.Namespace) -> int:
    import datapath_fio

    size = max(BLOCK * 2, parse_size("256M" if args.size == "1G" else args.size) // BLOCK * BLOCK)
    depths = [int(d) for d in (args.depths or "1,10,30").split(",")]
    w = tempfile.mkdtemp(prefix="dp-fio-", dir=args.dir or pick_work_dir(REPO))
    env = environment(w)
    env.update({"dataset": f"{size >> 20} MiB", "rounds": str(args.rounds or 1), "runtime": f"{args.runtime}s",
                "fio": subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()})
    print("# smapi datapath benchmark (fio nbd engine)")
    print_env(env)
    try:
        raw = os.path.join(w, "data.raw")
        gen_raw(raw, size, seed=1)
        rc = datapath_fio.main(w, raw, size, depths, args.runtime, args.rounds or 1, args.cache.split(","),
                               args.only.split(",") if args.only else None)
        print(f"\nloadavg after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return rc
    finally:
        from smapi.datapath.nbd import cleanup_stale

        cleanup_stale(os.path.join(w, "run"))
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
