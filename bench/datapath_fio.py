"""fio's ``nbd`` engine against three servers of the same disk, in one run: the smapi datapath (a VHD chain), nbdkit
``file`` on a raw copy, and ``qemu-nbd`` on an equal qcow2 chain (same depth, same blocks in the same levels).

    python bench/datapath.py --fio [--size 256M] [--depths 1,10,30] [--runtime 2] [--rounds 1] [--cache warm,cold]
                             [--only randread,seqread,randwrite,alloc]

Scenarios (per depth and cache mode): 4 KiB random read at QD1 and QD16; 4 KiB random write into allocated blocks
at QD1 and QD16 (an untimed sequential pass allocates every block of the leaf / top qcow2 first); 1 MiB sequential
read at QD4; 4 KiB random allocating writes at QD16 into an empty leaf / a fresh sparse raw file / an empty qcow2
overlay. Writes end with a flush (fio ``end_fsync``), so commits are paid inside the run.

Cache modes: ``warm`` = every server uses the page cache, which is warm (every image file is synced and read once
before each scenario); ``cold`` = the page cache of every image file is dropped (fadvise) before each run and the
servers avoid it: smapi with O_DIRECT (``SMAPI_DATAPATH_DIRECT=1``), qemu-nbd ``--cache=none --aio=native``
(O_DIRECT), nbdkit file ``cache=none`` (nbdkit 1.32's file plugin has no O_DIRECT; it reads through the page cache,
with the device's readahead, and evicts what it touched).

Reported per scenario: IOPS (median over rounds) of each server, the ratios smapi/raw and smapi/qemu, and the
server CPU time per I/O (user+system of the server process, /proc/<pid>/stat).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from typing import Callable, Dict, List, Optional, Tuple

import smapi.vhd as vhd
from smapi.datapath import ImageSpec, NbdServer, native
from smapi.datapath.nbdclient import NbdClient

MiB = 1 << 20
BLOCK = 2 * MiB
FIO = shutil.which("fio")
QEMU_NBD = shutil.which("qemu-nbd")
NBDKIT = shutil.which("nbdkit") or "/usr/sbin/nbdkit"
TICK = os.sysconf("SC_CLK_TCK")

# name, fio rw, bs, iodepth, writes?, targets {vs: (op, min ratio)}
SCENARIOS = [
    ("randread 4k QD1", "randread", "4k", 1, False),
    ("randread 4k QD16", "randread", "4k", 16, False),
    ("seqread 1M QD4", "read", "1M", 4, False),
    ("randwrite 4k QD1 (allocated)", "randwrite", "4k", 1, True),
    ("randwrite 4k QD16 (allocated)", "randwrite", "4k", 16, True),
]
ALLOC = ("alloc write 4k QD16 (empty leaf)", "randwrite", "4k", 16, True)
TARGETS = {"randread": (0.9, 1.2), "seqread": (0.9, None), "randwrite": (None, 1.0), "alloc": (0.8, None)}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def warm_cache(paths: List[str]) -> None:
    """Warm mode: every image file written back and read once, so no contender pays first reads or meets the
    writeback of the files just built (the 30 s dirty-page flush otherwise lands inside some runs)."""
    os.sync()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(8 * MiB):
                pass


def drop_cache(paths: List[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd) if os.access(p, os.W_OK) else None
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def fio(uri: str, rw: str, bs: str, qd: int, size: int, runtime: float, write: bool) -> Tuple[float, int]:
    """Run fio once; returns (IOPS, I/Os done)."""
    cmd = [FIO, "--name=b", "--ioengine=nbd", f"--uri={uri}", f"--rw={rw}", f"--bs={bs}", f"--iodepth={qd}",
           f"--size={size}", f"--runtime={runtime}", "--time_based", "--output-format=json", "--randrepeat=0"]
    if write:
        cmd.append("--end_fsync=1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=runtime + 120)
    if res.returncode != 0:
        raise RuntimeError(f"fio failed: {res.stderr[-1500:]}")
    job = json.loads(res.stdout[res.stdout.index("{"):])["jobs"][0]
    side = job["write" if write else "read"]
    return float(side["iops"]), int(side["total_ios"])


# ------------------------------------------------------------------------------------------------ servers
class Server:
    """One contender: start(), stop(), uri, pid, files (for cache dropping)."""

    name = ""
    uri = ""
    pid = 0
    files: List[str] = []

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SmapiServer(Server):
    name = "smapi"

    def __init__(self, run_dir: str, export: str, leaf: str, cold: bool) -> None:
        self.srv, self.export, self.leaf, self.cold = NbdServer(run_dir), export, leaf, cold

    def start(self) -> None:
        old = os.environ.get(native.ENV_DIRECT)
        os.environ[native.ENV_DIRECT] = "1" if self.cold else ""
        try:
            ex = self.srv.start(self.export, ImageSpec("vhd", self.leaf), readonly=False)
        finally:
            os.environ[native.ENV_DIRECT] = old or ""
        self.uri, self.pid = ex.uri, ex.pid
        self.engine = (ex.engine or {}).get("engine", "?")
        self.files = native.chain_paths(ImageSpec("vhd", self.leaf))

    def stop(self) -> None:
        self.srv.stop(self.export)


class ProcServer(Server):
    def __init__(self, name: str, sock: str, cmd: List[str], files: List[str]) -> None:
        self.name, self.sock, self.cmd, self.files = name, sock, cmd, files
        self.proc: Optional[subprocess.Popen] = None
        self.uri = f"nbd+unix:///?socket={sock}"

    def start(self) -> None:
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            try:
                with NbdClient(self.sock):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} did not start") from None
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def raw_server(w: str, tag: str, path: str, cold: bool) -> ProcServer:
    sock = os.path.join(w, f"raw-{tag}.sock")
    return ProcServer("raw", sock, [NBDKIT, "-f", "-U", sock, "file", f"file={path}"]
                      + (["cache=none"] if cold else []), [path])


def qemu_server(w: str, tag: str, top: str, files: List[str], cold: bool) -> ProcServer:
    sock = os.path.join(w, f"qemu-{tag}.sock")
    cache = ["--cache=none", "--aio=native"] if cold else ["--cache=writeback"]
    return ProcServer("qemu", sock, [QEMU_NBD, "-k", sock, "-f", "qcow2", "-t", "-e", "8", *cache, top], files)


# ------------------------------------------------------------------------------------------------ images
def qcow2_chain(w: str, raw: str, depth: int, size: int) -> List[str]:
    """The qcow2 twin of datapath.build_chain: base = everything, overlay k rewrites blocks k, k+depth, ..."""
    base = os.path.join(w, f"q{depth}_0.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, base], check=True)
    files = [base]
    with open(raw, "rb") as src:
        for k in range(1, depth):
            top = os.path.join(w, f"q{depth}_{k}.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", files[-1], "-F", "qcow2", top],
                           check=True)
            srv = qemu_server(w, "fill", top, [], False)
            srv.start()
            try:
                with NbdClient(srv.sock) as c:
                    for blk in range(k, size // BLOCK, depth):
                        src.seek(blk * BLOCK)
                        c.pwrite(src.read(BLOCK), blk * BLOCK)
                    c.flush()
            finally:
                srv.stop()
            files.append(top)
    return files


def qcow2_overlay(top: str, path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", top, "-F", "qcow2", path], check=True)


# ------------------------------------------------------------------------------------------------ runs
Row = Dict[str, object]


def measure(servers: List[Server], sc: tuple, size: int, runtime: float, rounds: int, cold: bool,
            prepare: Optional[Callable[[Server], None]] = None) -> Row:
    title, rw, bs, qd, write = sc
    iops: Dict[str, List[float]] = {s.name: [] for s in servers}
    cpu: Dict[str, List[float]] = {s.name: [] for s in servers}
    for r in range(rounds):
        for s in servers[r % len(servers):] + servers[: r % len(servers)]:
            if prepare:
                prepare(s)
            if cold:
                drop_cache(s.files)
            c0 = cpu_seconds(s.pid)
            v, n = fio(s.uri, rw, bs, qd, size, runtime, write)
            iops[s.name].append(v)
            cpu[s.name].append((cpu_seconds(s.pid) - c0) / max(n, 1) * 1e6)
    return {"scenario": title, "iops": {k: statistics.median(v) for k, v in iops.items()},
            "cpu_us": {k: statistics.median(v) for k, v in cpu.items()},
            "ratios": {k: [a / b for a, b in zip(iops["smapi"], v)] for k, v in iops.items() if k != "smapi"}}


def _target(title: str) -> Tuple[Optional[float], Optional[float]]:
    key = "alloc" if title.startswith("alloc") else title.split()[0]
    return TARGETS.get(key, (None, None))


def _verdict(row: Row) -> str:
    lo_raw, lo_qemu = _target(str(row["scenario"]))
    r = row["ratios"]
    assert isinstance(r, dict)
    ok = True
    if lo_raw is not None:
        ok &= statistics.median(r["raw"]) >= lo_raw
    if lo_qemu is not None:
        ok &= statistics.median(r["qemu"]) >= lo_qemu
    want = " ".join(x for x in (f">={lo_raw}x raw" if lo_raw else "", f">={lo_qemu}x qemu" if lo_qemu else "") if x)
    return f"{want}: {'met' if ok else 'MISSED'}" if want else ""


def wanted(title: str, only: Optional[List[str]]) -> bool:
    """--only: scenario kinds (randread, seqread, randwrite, alloc), or None for all."""
    return only is None or any(title.startswith(k) for k in only)


def run_depth(w: str, raw: str, depth: int, size: int, runtime: float, rounds: int, cold: bool,
              only: Optional[List[str]] = None) -> List[Row]:
    from datapath import build_chain, export_sha  # bench/datapath.py (imported lazily: it imports this module)

    d = os.path.join(w, f"{'cold' if cold else 'warm'}-d{depth}")
    os.makedirs(d)
    leaf = build_chain(d, raw, depth, size)
    qfiles = qcow2_chain(d, raw, depth, size)
    raw_copy = os.path.join(d, "copy.raw")
    shutil.copyfile(raw, raw_copy)
    servers: List[Server] = [SmapiServer(os.path.join(w, "run"), f"d{depth}", leaf, cold),
                             raw_server(d, "rw", raw_copy, cold), qemu_server(d, "rw", qfiles[-1], qfiles, cold)]
    rows = []
    try:
        for s in servers:
            s.start()
        shas = {s.name: export_sha(s.uri) for s in servers}
        if len(set(shas.values())) != 1:
            raise SystemExit(f"exports differ at depth {depth}: {shas}")
        engine = getattr(servers[0], "engine", "?")
        filled = False
        for sc in SCENARIOS:
            if not wanted(sc[0], only):
                continue
            if sc[4] and not filled:
                for s in servers:  # allocate every block of the top image first (untimed)
                    _fill(s.uri, size)
                filled = True
            if not cold:
                warm_cache([f for s in servers for f in s.files])
            row = measure(servers, sc, size, runtime, rounds, cold)
            row.update(depth=depth, cache="cold" if cold else "warm", engine=engine)
            rows.append(row)
            _print_row(row)
    finally:
        for s in servers:
            s.stop()
    # The empty leaf makes the chain `depth` deep: it goes over the first depth-1 images (none at depth 1).
    if wanted(ALLOC[0], only):
        parent = native.chain_paths(ImageSpec("vhd", leaf))[1] if depth > 1 else None
        rows.append(alloc_row(d, parent, qfiles[-2] if depth > 1 else None, size, runtime, rounds, cold, depth, w))
        _print_row(rows[-1])
    return rows


def _fill(uri: str, size: int) -> None:
    cmd = [FIO, "--name=fill", "--ioengine=nbd", f"--uri={uri}", "--rw=write", "--bs=1M", "--iodepth=4",
           f"--size={size}", "--end_fsync=1", "--output-format=json"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)


def alloc_row(d: str, parent: Optional[str], qtop: Optional[str], size: int, runtime: float, rounds: int,
              cold: bool, depth: int, w: str) -> Row:
    """Allocating writes: every round gets a fresh empty leaf / sparse raw file / qcow2 overlay."""
    leaf, raw_t, qov = os.path.join(d, "alloc.vhd"), os.path.join(d, "alloc.raw"), os.path.join(d, "alloc.qcow2")
    smapi = SmapiServer(os.path.join(w, "run"), f"a{depth}", leaf, cold)
    servers: List[Server] = [smapi, raw_server(d, "alloc", raw_t, cold), qemu_server(d, "alloc", qov, [qov], cold)]

    def fresh(s: Server) -> None:
        s.stop()
        if s is smapi:
            if os.path.exists(leaf):
                os.unlink(leaf)
            if parent:
                vhd.snapshot(parent, leaf)
            else:
                vhd.create_dynamic(leaf, size)
        elif s.name == "raw":
            if os.path.exists(raw_t):
                os.unlink(raw_t)
            with open(raw_t, "wb") as f:
                f.truncate(size)
        elif qtop:
            qcow2_overlay(qtop, qov)
        else:
            if os.path.exists(qov):
                os.unlink(qov)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", qov, str(size)], check=True)
        os.sync()
        s.start()

    try:
        row = measure(servers, ALLOC, size, runtime, rounds, cold, prepare=fresh)
    finally:
        for s in servers:
            s.stop()
    row.update(depth=depth, cache="cold" if cold else "warm", engine=getattr(smapi, "engine", "?"))
    return row


def _print_row(r: Row) -> None:
    i, q = r["iops"], r["ratios"]
    assert isinstance(i, dict) and isinstance(q, dict)
    print(f"- {r['cache']} depth {r['depth']} {r['scenario']}: smapi/raw {statistics.median(q['raw']):.2f}x, "
          f"smapi/qemu {statistics.median(q['qemu']):.2f}x", flush=True)


def print_table(rows: List[Row]) -> None:
    print("\n| cache | depth | scenario | smapi IOPS | raw IOPS | qemu IOPS | smapi/raw | smapi/qemu | CPU us/IO "
          "smapi / raw / qemu | target |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        i, c, q = r["iops"], r["cpu_us"], r["ratios"]
        assert isinstance(i, dict) and isinstance(c, dict) and isinstance(q, dict)
        print(f"| {r['cache']} | {r['depth']} | {r['scenario']} | {i['smapi']:.0f} | {i['raw']:.0f} | "
              f"{i['qemu']:.0f} | {statistics.median(q['raw']):.2f}x | {statistics.median(q['qemu']):.2f}x | "
              f"{c['smapi']:.1f} / {c['raw']:.1f} / {c['qemu']:.1f} | {_verdict(r)} |")


def main(w: str, raw: str, size: int, depths: List[int], runtime: float, rounds: int, caches: List[str],
         only: Optional[List[str]] = None) -> int:
    if not (FIO and QEMU_NBD):
        print("fio / qemu-nbd not installed (ci/apt-packages.txt)")
        return 2
    rows: List[Row] = []
    for cache in caches:
        for depth in depths:
            got = run_depth(w, raw, depth, size, runtime, rounds, cache == "cold", only)
            rows += got
            print(f"- done: {cache} depth {depth} (smapi engine: {got[-1]['engine'] if got else '?'})", flush=True)
    print("\n## fio nbd engine: smapi datapath vs nbdkit file (raw) vs qemu-nbd (qcow2 chain)")
    print_table(rows)
    return 0
