"""Benchmark of smapi.vhd against qemu-img and raw copies (reference doc vhd-format §7 protocol).

    python bench/vhd.py [--size 2G | --smoke] [--rounds 5] [--dir DIR] [--only import,read,...]

Scenarios: create, import (raw -> dynamic VHD), read (chain depth 1 / 30 vs qcow2 chains), export, coalesce (25%
rewritten child vs ``qemu-img commit``), snapshot latency, scan (1000 headers vs the raw read floor). Contenders
run interleaved in one process tree and one directory; every output is checksummed before timing.
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from _harness import (  # noqa: E402
    Contender,
    Scenario,
    children_peak_rss_mib,
    environment,
    fsync_path,
    peak_rss_mib,
    pick_work_dir,
    print_env,
    print_summary,
    process_floor,
    run_scenario,
    sh,
    sha256_file,
    warm,
)

import smapi.vhd as vhd  # noqa: E402
from smapi.vhd.backing import aligned_buffer  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
BLOCK = 2 * MiB
QEMU = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}
    t = text.strip().upper().rstrip("B").rstrip("I")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


# ------------------------------------------------------------------------------------------------ data
def gen_raw(path: str, size: int, pattern: str, seed: int = 1) -> str:
    """rand: every 2 MiB block random; half: alternating random / zero blocks (zeros written). Returns sha256."""
    r = random.Random(seed)
    h = hashlib.sha256()
    zero = bytes(BLOCK)
    with open(path, "wb") as f:
        for i in range(size // BLOCK):
            buf = zero if pattern == "half" and i % 2 else r.randbytes(BLOCK)
            f.write(buf)
            h.update(buf)
    return h.hexdigest()


def rewritten_blocks(size: int) -> List[int]:
    """25% of the blocks (every 4th), as in the reference measurements."""
    return list(range(0, size // BLOCK, 4))


def expected_chain_hash(raw: str, size: int) -> str:
    """Hash of the raw image with every 4th block replaced by 0xab bytes."""
    h = hashlib.sha256()
    ab = b"\xab" * BLOCK
    with open(raw, "rb") as f:
        for i in range(size // BLOCK):
            buf = f.read(BLOCK)
            h.update(ab if i % 4 == 0 else buf)
    return h.hexdigest()


def chain_hash(path: str) -> str:
    h = hashlib.sha256()
    with vhd.open_chain(path) as c:
        buf = aligned_buffer(BLOCK)
        mv = memoryview(buf)
        for off in range(0, c.size, BLOCK):
            n = min(BLOCK, c.size - off)
            c.readinto(mv[:n], off)
            h.update(mv[:n])
        mv.release()
    return h.hexdigest()


def read_chain_discard(path: str) -> None:
    with vhd.open_chain(path) as c:
        buf = aligned_buffer(BLOCK)
        mv = memoryview(buf)
        size = c.size
        for off in range(0, size, BLOCK):
            c.readinto(mv[: min(BLOCK, size - off)], off)
        mv.release()


def build_vhd_chain(w: str, base: str, depth: int, size: int) -> List[str]:
    """A chain of ``depth`` overlays over ``base`` rewriting every 4th block with 0xab, round-robin."""
    names = [base]
    blocks = rewritten_blocks(size)
    ab = b"\xab" * BLOCK
    for k in range(depth):
        p = os.path.join(w, f"vd{depth}_{k}.vhd")
        vhd.snapshot(names[-1], p)
        with vhd.open_chain(p, writable=True) as c, c.batch():
            for j, blk in enumerate(blocks):
                if j % depth == k:
                    c.write(blk * BLOCK, ab)
        names.append(p)
    return names


def build_qcow2_chain(w: str, base: str, depth: int, size: int) -> List[str]:
    names = [base]
    blocks = rewritten_blocks(size)
    for k in range(depth):
        p = os.path.join(w, f"qd{depth}_{k}.qcow2")
        sh(QEMU, "create", "-q", "-f", "qcow2", "-b", os.path.basename(names[-1]), "-F", "qcow2", p)
        cmds = []
        for j, blk in enumerate(blocks):
            if j % depth == k:
                cmds += ["-c", f"write -P 0xab {blk * BLOCK} 2M"]
        if cmds:
            sh(QEMU_IO, "-f", "qcow2", *cmds, p)
        names.append(p)
    return names


def qemu_raw_hash(w: str, image: str, fmt: str) -> str:
    out = os.path.join(w, "qemu-check.raw")
    sh(QEMU, "convert", "-f", fmt, "-O", "raw", image, out)
    h = sha256_file(out)
    os.unlink(out)
    return h


def rm(*paths: str) -> None:
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


def check(label: str, got: str, want: str) -> None:
    if got != want:
        raise SystemExit(f"correctness gate failed for {label}: {got[:16]} != {want[:16]}")
    print(f"  gate ok: {label} sha256 {got[:16]}")


# ------------------------------------------------------------------------------------------------ scenarios
class Bench:
    def __init__(self, w: str, size: int, rounds: int, scan_files: int) -> None:
        self.w, self.size, self.rounds, self.scan_files = w, size, rounds, scan_files
        self.scenarios: List[Scenario] = []
        self.qfloor = process_floor([QEMU, "--version"]) if QEMU else 0.0
        self.raw: Dict[str, str] = {}
        self.raw_hash: Dict[str, str] = {}
        print(f"- qemu-img process floor: {self.qfloor * 1000:.1f} ms (subtracted from qemu timings)")

    def p(self, name: str) -> str:
        return os.path.join(self.w, name)

    def data(self, pattern: str) -> str:
        if pattern not in self.raw:
            path = self.p(f"{pattern}.raw")
            t0 = time.perf_counter()
            self.raw_hash[pattern] = gen_raw(path, self.size, pattern)
            self.raw[pattern] = path
            print(f"- generated {pattern}.raw ({self.size >> 20} MiB) in {time.perf_counter() - t0:.1f} s")
        return self.raw[pattern]

    def add(self, sc: Scenario) -> None:
        run_scenario(sc, self.rounds)
        self.scenarios.append(sc)

    # 1. create -----------------------------------------------------------------------------------------
    def create(self) -> None:
        k = 10
        sizes = {"1G": GiB, "100G": 100 * GiB, "2040G": 2040 * GiB}
        cs = []
        for label, sz in sizes.items():
            files = [self.p(f"cr{label}_{i}.vhd") for i in range(k)]

            def lib(files=files, sz=sz) -> None:
                for f in files:
                    vhd.create_dynamic(f, sz)
                fsync_path(files[-1])

            def qemu(files=files, label=label) -> None:
                for f in files:
                    sh(QEMU, "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", f + ".q", label)

            cs.append(Contender(f"lib {label} x{k}", lib, prepare=lambda files=files: rm(*files)))
            if QEMU:
                # Whole process time: subtracting the start-up floor from a 5 ms command is noise-dominated.
                cs.append(Contender(f"qemu vpc {label} x{k}", qemu,
                                    prepare=lambda files=files: rm(*(f + ".q" for f in files))))
        for label in ("1G", "2040G"):
            cf = [self.p(f"crcli{label}_{i}.vhd") for i in range(3)]

            def cli(cf=cf, label=label) -> None:
                for f in cf:
                    sh(sys.executable, "-m", "smapi.cli.vhd", "create", f, label)

            cs.append(Contender(f"cli {label} x3", cli, prepare=lambda cf=cf: rm(*cf)))
        sc = Scenario("create dynamic VHD (API: 10 files per run; CLI: 3 processes per run)", cs)
        if QEMU:
            sc.ratios += [(f"create {lb}: lib time / qemu-img vpc time", f"lib {lb} x{k}", f"qemu vpc {lb} x{k}",
                           "time", "<= 1.0") for lb in sizes]
        sc.ratios.append(("create 2040G / 1G, CLI incl. start-up (time)", "cli 2040G x3", "cli 1G x3", "time", "<= 3"))
        sc.ratios.append(("create 2040G / 1G, API in-process (time; 4 MiB BAT + fsync)", f"lib 2040G x{k}",
                          f"lib 1G x{k}", "time", ""))
        self.add(sc)
        for f in os.listdir(self.w):
            if f.startswith("cr"):
                os.unlink(self.p(f))

    # 2. import ---------------------------------------------------------------------------------------
    def import_(self, pattern: str) -> None:
        raw = self.data(pattern)
        lib_out, q_out, cp_out = self.p(f"imp_{pattern}.vhd"), self.p(f"imp_{pattern}.q.vhd"), self.p("cp.raw")
        rm(lib_out)
        vhd.import_raw(raw, lib_out)
        check(f"import {pattern} (lib)", chain_hash(lib_out), self.raw_hash[pattern])
        if QEMU:
            sh(QEMU, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, q_out)
            check(f"import {pattern} (qemu)", qemu_raw_hash(self.w, q_out, "vpc"), self.raw_hash[pattern])

        def prep(out: str) -> Callable[[], None]:
            def f() -> None:
                rm(out)
                os.sync()
                warm(raw)
            return f

        cs = [Contender("lib import +fsync", lambda: vhd.import_raw(raw, lib_out), prepare=prep(lib_out))]
        if QEMU:
            def qemu() -> None:
                sh(QEMU, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw, q_out)
                fsync_path(q_out)
            cs.append(Contender("qemu convert vpc +sync", qemu, prepare=prep(q_out), floor=self.qfloor))

        def cp() -> None:
            sh("cp", raw, cp_out)
            fsync_path(cp_out)
        cs.append(Contender("cp +sync", cp, prepare=prep(cp_out)))
        sc = Scenario(f"import raw ({pattern}) -> dynamic VHD, warm source, + fsync", cs)
        if QEMU:
            sc.ratios.append((f"import {pattern}: lib vs qemu-img convert -O vpc (throughput)",
                              "lib import +fsync", "qemu convert vpc +sync", "throughput",
                              ">= 1.0" if pattern == "half" else ">= 0.9"))
        sc.ratios.append((f"import {pattern}: lib vs cp (throughput)", "lib import +fsync", "cp +sync", "throughput",
                          ">= 1.2" if pattern == "half" else ">= 0.8"))
        self.add(sc)
        rm(q_out, cp_out)
        if pattern == "rand":
            self.base_vhd = lib_out  # fully allocated base for the chain scenarios
        else:
            self.half_vhd = lib_out

    # 3. chains -----------------------------------------------------------------------------------------
    def chains(self) -> None:
        raw = self.data("rand")
        if not hasattr(self, "base_vhd"):
            self.base_vhd = self.p("imp_rand.vhd")
            rm(self.base_vhd)
            vhd.import_raw(raw, self.base_vhd)
        self.expect = expected_chain_hash(raw, self.size)
        t0 = time.perf_counter()
        # d1 = base + 1 overlay; d30 = base + 29 overlays = 30 images, the deepest chain allowed (MAX_CHAIN_SIZE).
        self.vd1 = build_vhd_chain(self.w, self.base_vhd, 1, self.size)
        self.vd30 = build_vhd_chain(self.w, self.base_vhd, 29, self.size)
        print(f"- built VHD chains d1, d30 in {time.perf_counter() - t0:.1f} s")
        check("vhd chain d1", chain_hash(self.vd1[-1]), self.expect)
        check("vhd chain d30", chain_hash(self.vd30[-1]), self.expect)
        if QEMU and QEMU_IO:
            t0 = time.perf_counter()
            self.qbase = self.p("qbase.qcow2")
            sh(QEMU, "convert", "-f", "raw", "-O", "qcow2", raw, self.qbase)
            self.qd1 = build_qcow2_chain(self.w, self.qbase, 1, self.size)
            self.qd30 = build_qcow2_chain(self.w, self.qbase, 29, self.size)
            print(f"- built qcow2 chains d1, d30 in {time.perf_counter() - t0:.1f} s")
            check("qcow2 chain d1", qemu_raw_hash(self.w, self.qd1[-1], "qcow2"), self.expect)
            check("qcow2 chain d30", qemu_raw_hash(self.w, self.qd30[-1], "qcow2"), self.expect)

    def read(self) -> None:
        nblk = self.size // BLOCK
        cs = [Contender("lib d1", lambda: read_chain_discard(self.vd1[-1]), prepare=lambda: warm(*self.vd1)),
              Contender("lib d30", lambda: read_chain_discard(self.vd30[-1]), prepare=lambda: warm(*self.vd30))]
        has_q = hasattr(self, "qd30")
        if has_q:
            for d, chain in (("d1", self.qd1), ("d30", self.qd30)):
                cs.append(Contender(f"qemu qcow2 {d}", lambda c=chain: sh(
                    QEMU, "bench", "-t", "writeback", "-f", "qcow2", "-c", str(nblk), "-s", "2M", "-d", "1", c[-1]),
                    prepare=lambda c=chain: warm(*c), floor=self.qfloor))
        sc = Scenario("chain read, warm, read -> discard (lib in-process; qemu-img bench)", cs)
        sc.ratios.append(("read: lib d30 vs lib d1 (throughput)", "lib d30", "lib d1", "throughput", ">= 0.9"))
        if has_q:
            sc.ratios.append(("read: lib d30 vs qemu qcow2 d30 (throughput)", "lib d30", "qemu qcow2 d30",
                              "throughput", ">= 1.0"))
            sc.ratios.append(("read: lib d1 vs qemu qcow2 d1 (throughput)", "lib d1", "qemu qcow2 d1",
                              "throughput", ""))
        self.add(sc)

    def export(self) -> None:
        out_l, out_q = self.p("exp.raw"), self.p("exp.q.raw")
        vhd.export_raw(self.vd30[-1], out_l)
        check("export d30 (lib)", sha256_file(out_l), self.expect)

        def prep(out: str, chain: List[str]) -> Callable[[], None]:
            def f() -> None:
                rm(out)
                os.sync()
                warm(*chain)
            return f

        cs = [Contender("lib export d30 +fsync", lambda: vhd.export_raw(self.vd30[-1], out_l),
                        prepare=prep(out_l, self.vd30))]
        if hasattr(self, "qd30"):
            def qemu() -> None:
                sh(QEMU, "convert", "-f", "qcow2", "-O", "raw", self.qd30[-1], out_q)
                fsync_path(out_q)
            cs.append(Contender("qemu convert qcow2 d30 +sync", qemu, prepare=prep(out_q, self.qd30),
                                floor=self.qfloor))
        sc = Scenario("export chain d30 -> raw file + fsync (end to end, warm inputs)", cs)
        if hasattr(self, "qd30"):
            sc.ratios.append(("export d30: lib vs qemu qcow2 d30 -> raw (throughput)", "lib export d30 +fsync",
                              "qemu convert qcow2 d30 +sync", "throughput", ">= 0.9"))
        self.add(sc)
        rm(out_l, out_q)

    # 5. coalesce ---------------------------------------------------------------------------------------
    def coalesce(self) -> None:
        lw = self.p("co")
        os.makedirs(lw, exist_ok=True)
        parent = os.path.join(lw, os.path.basename(self.base_vhd))
        child = os.path.join(lw, os.path.basename(self.vd1[1]))
        shutil.copyfile(self.base_vhd, parent)
        shutil.copyfile(self.vd1[1], child)
        vhd.coalesce(child)
        check("coalesce (lib): parent == chain view", chain_hash(parent), self.expect)
        cs = [Contender("lib coalesce +fsync", lambda: vhd.coalesce(child),
                        prepare=lambda: (os.sync(), warm(parent, child)))]
        has_q = hasattr(self, "qd1")
        if has_q:
            qw = self.p("qco")
            os.makedirs(qw, exist_ok=True)
            qb = os.path.join(qw, os.path.basename(self.qbase))
            qo = os.path.join(qw, os.path.basename(self.qd1[1]))
            shutil.copyfile(self.qbase, qb)
            shutil.copyfile(self.qd1[1], qo)
            pristine_ovl = qo + ".pristine"
            shutil.copyfile(qo, pristine_ovl)
            sh(QEMU, "commit", "-q", "-f", "qcow2", qo)
            check("qemu commit: base == chain view", qemu_raw_hash(self.w, qb, "qcow2"), self.expect)

            def restore() -> None:
                shutil.copyfile(pristine_ovl, qo)  # default commit empties the overlay: rebuild it, untimed
                os.sync()
                warm(qb, qo)

            def qemu() -> None:
                sh(QEMU, "commit", "-q", "-f", "qcow2", qo)
                fsync_path(qb)

            def qemu_keep() -> None:
                # -d keeps the overlay: the same copy work without emptying it (closest to vhd-util coalesce)
                sh(QEMU, "commit", "-q", "-d", "-f", "qcow2", qo)
                fsync_path(qb)
            cs.append(Contender("qemu-img commit +sync", qemu, prepare=restore, floor=self.qfloor))
            cs.append(Contender("qemu-img commit -d +sync", qemu_keep, prepare=restore, floor=self.qfloor))
        sc = Scenario("coalesce a 25%-rewritten child into its parent (re-run in place each round)", cs)
        if has_q:
            sc.ratios.append(("coalesce 25%: lib vs qemu-img commit (throughput)", "lib coalesce +fsync",
                              "qemu-img commit +sync", "throughput", ">= 1.2"))
            sc.ratios.append(("coalesce 25%: lib vs qemu-img commit -d, overlay kept (throughput)",
                              "lib coalesce +fsync", "qemu-img commit -d +sync", "throughput", ""))
        self.add(sc)
        shutil.rmtree(lw)
        if has_q:
            shutil.rmtree(qw)

    # 4. snapshot ---------------------------------------------------------------------------------------
    def snapshot(self) -> None:
        k = 20
        leaves = {"empty 1G": self.p("s_e1g.vhd"), "empty S": self.p("s_es.vhd"), "empty 2040G": self.p("s_e2t.vhd")}
        vhd.create_dynamic(leaves["empty 1G"], GiB)
        vhd.create_dynamic(leaves["empty S"], self.size)
        vhd.create_dynamic(leaves["empty 2040G"], 2040 * GiB)
        if not hasattr(self, "half_vhd"):
            self.half_vhd = self.p("imp_half.vhd")
            rm(self.half_vhd)
            vhd.import_raw(self.data("half"), self.half_vhd)
        leaves["50% allocated S"] = self.half_vhd
        cs = []
        for label, leaf in leaves.items():
            kids = [self.p(f"snap_{abs(hash(label))}_{i}.vhd") for i in range(k)]

            def run(leaf=leaf, kids=kids) -> None:
                for kid in kids:
                    vhd.snapshot(leaf, kid)

            cs.append(Contender(f"lib {label} x{k}", run, prepare=lambda kids=kids: rm(*kids)))
        for label in ("empty 1G", "empty 2040G"):
            ck = [self.p(f"snapcli_{label[-5:].strip()}_{i}.vhd") for i in range(3)]

            def cli(leaf=leaves[label], ck=ck) -> None:
                for kid in ck:
                    sh(sys.executable, "-m", "smapi.cli.vhd", "snapshot", leaf, kid)

            cs.append(Contender(f"cli {label} x3", cli, prepare=lambda ck=ck: rm(*ck)))
        if QEMU:
            qb = self.p("s_base.qcow2")
            sh(QEMU, "create", "-q", "-f", "qcow2", qb, "1G")
            qk = [self.p(f"snapq_{i}.qcow2") for i in range(k)]

            def qrun() -> None:
                for kid in qk:
                    sh(QEMU, "create", "-q", "-f", "qcow2", "-b", "s_base.qcow2", "-F", "qcow2", kid)
            cs.append(Contender(f"qemu qcow2 1G x{k}", qrun, prepare=lambda: rm(*qk)))
        sc = Scenario(f"snapshot latency (API, {k} snapshots per run; S = --size)", cs)
        sc.ratios += [
            ("snapshot: 50%-allocated / empty, same size (time)", f"lib 50% allocated S x{k}", f"lib empty S x{k}",
             "time", "<= 1.2"),
            ("snapshot: 2040 GiB / 1 GiB, CLI incl. start-up (time)", "cli empty 2040G x3", "cli empty 1G x3",
             "time", "<= 3"),
            ("snapshot: 2040 GiB / 1 GiB, API in-process (time; 4 MiB BAT + fsync)", f"lib empty 2040G x{k}",
             f"lib empty 1G x{k}", "time", ""),
        ]
        if QEMU:
            sc.ratios.append(("snapshot 1G: lib API time / qemu-img create -b process time", f"lib empty 1G x{k}",
                              f"qemu qcow2 1G x{k}", "time", ""))
        self.add(sc)
        for label, leaf in leaves.items():
            if label != "50% allocated S":
                rm(leaf)
        for f in os.listdir(self.w):
            if f.startswith("snap"):
                rm(self.p(f))

    # 6. scan -------------------------------------------------------------------------------------------
    def scan(self) -> None:
        d = self.p("scan")
        os.makedirs(d, exist_ok=True)
        n = self.scan_files
        r = random.Random(5)
        sizes = [GiB, 16 * GiB, 256 * GiB, 2040 * GiB]
        nbase = n * 2 // 5
        depth: Dict[str, int] = {}
        names: List[str] = []
        t0 = time.perf_counter()
        for i in range(nbase):
            p = os.path.join(d, f"b{i:04d}.vhd")
            vhd.create_dynamic(p, sizes[i % 4])
            depth[p] = 1
            names.append(p)
        for i in range(n - nbase):
            parent = r.choice([x for x in names[-60:] if depth[x] < 30] or names[:1])
            p = os.path.join(d, f"c{i:04d}.vhd")
            vhd.snapshot(parent, p)
            depth[p] = depth[parent] + 1
            names.append(p)
            if i % 7 == 0:
                vhd.set_hidden(parent, True)
        # One corrupt footer (both copies), one short (511-byte-tail) footer.
        with open(names[3], "r+b") as f:
            f.seek(0)
            f.write(b"garbage!")
            f.seek(-512, 2)
            f.write(b"garbage!")
        with open(names[5], "r+b") as f:
            f.truncate(os.path.getsize(names[5]) - 1)
        print(f"- built {n} VHDs for the scan in {time.perf_counter() - t0:.1f} s")
        res = vhd.scan_headers(d)
        errs = [x for x in res if x.error]
        assert len(res) == n and len(errs) == 1, (len(res), [e.error for e in errs])
        print(f"  gate ok: scan found {n} images, {len(errs)} error ({errs[0].error}), "
              f"{sum(x.hidden for x in res)} hidden")

        def floor() -> None:
            with os.scandir(d) as it:
                paths = sorted(e.path for e in it if e.name.endswith(".vhd") and e.is_file())
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                os.pread(fd, 1536, 0)
                size = os.fstat(fd).st_size
                os.pread(fd, 512, size - 512)
                os.close(fd)

        cs = [Contender(f"lib scan_headers x{n}", lambda: vhd.scan_headers(d)),
              Contender(f"python read floor x{n}", floor)]
        sc = Scenario(f"header scan of {n} VHDs, warm, in-process", cs)
        sc.ratios.append((f"scan {n}: lib / raw header-read floor (time)", f"lib scan_headers x{n}",
                          f"python read floor x{n}", "time", "<= 2"))
        self.add(sc)
        shutil.rmtree(d)


def main(argv: "List[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2G", help="dataset size (default 2G)")
    ap.add_argument("--smoke", action="store_true", help="CI-sized run: 256 MiB, 3 rounds, 200 scan files")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per scenario (default 5, smoke 3)")
    ap.add_argument("--scan-files", type=int, default=None, help="VHDs in the scan scenario (default 1000)")
    ap.add_argument("--dir", default=None, help="scratch parent directory (default: same disk as the repo)")
    ap.add_argument("--only", default="create,import,read,export,coalesce,snapshot,scan",
                    help="comma-separated scenarios")
    args = ap.parse_args(argv)
    size = parse_size("256M" if args.smoke and args.size == "2G" else args.size)
    size = max(BLOCK * 4, size // BLOCK * BLOCK)
    rounds = args.rounds or (3 if args.smoke else 5)
    scan_files = args.scan_files or (200 if args.smoke else 1000)
    parent = args.dir or pick_work_dir(REPO)
    w = tempfile.mkdtemp(prefix="vhd-bench-", dir=parent)
    only = set(args.only.split(","))
    env = environment(w)
    env.update({"dataset": f"{size >> 20} MiB", "rounds": str(rounds), "cache regime": "warm (cold: not run)"})
    print("# smapi.vhd benchmark")
    print_env(env)
    if not QEMU:
        print("- qemu-img not found: qemu baselines skipped")
    try:
        b = Bench(w, size, rounds, scan_files)
        if "create" in only:
            b.create()
        if "import" in only:
            b.import_("half")
            b.import_("rand")
        if only & {"read", "export", "coalesce"}:
            b.chains()
            if "read" in only:
                b.read()
            if "export" in only:
                b.export()
            if "coalesce" in only:
                b.coalesce()
        if "snapshot" in only:
            b.snapshot()
        if "scan" in only:
            b.scan()
        print_summary(b.scenarios)
        print(f"\npeak RSS: bench process {peak_rss_mib():.0f} MiB (library work is in-process), "
              f"largest child (qemu/cp) {children_peak_rss_mib():.0f} MiB; target < 200 MiB")
        print(f"loadavg after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(w, ignore_errors=True)
        subprocess.run(["sync"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
