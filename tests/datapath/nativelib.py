"""Shared helpers of the native-datapath tests: chains built by the Python library, and the native server."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from typing import Any, Dict, List, Tuple

import pytest

import smapi.vhd as vhd
from smapi.datapath import native
from smapi.datapath.model import ImageSpec
from smapi.datapath.nbd import NbdExport, NbdServer
from smapi.vhd import constants as C

from .dptestlib import LIBNBD_PY, libnbd_available

MiB = 1 << 20
BLOCK = 2 * MiB
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbdops_client.py")


def require_native() -> str:
    engine = native.availability(shutil.which("nbdkit") or "/usr/sbin/nbdkit")
    if engine.name != native.NATIVE:
        pytest.skip(f"native plugin unavailable: {engine.reason}")
    if not libnbd_available():
        pytest.skip("python3-libnbd missing (ci/apt-packages.txt)")
    assert engine.plugin is not None
    return engine.plugin


def build_chain(directory: str, size: int, depth: int, seed: int) -> str:
    """``depth`` images; every level writes a few random ranges (aligned and not). Returns the leaf's path."""
    rnd = random.Random(seed)
    path = os.path.join(directory, "c0.vhd")
    vhd.create_dynamic(path, size)
    for level in range(depth):
        if level:
            child = os.path.join(directory, f"c{level}.vhd")
            vhd.snapshot(path, child)
            path = child
        with vhd.open_chain(path, writable=True) as chain:
            for _ in range(rnd.randrange(3)):
                off = rnd.randrange(size)
                n = min(rnd.choice([512, 4096, 70000, BLOCK]), size - off)
                chain.write(off, rnd.randbytes(n))
    return path


def copy_dir(src: str, dst: str) -> None:
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.endswith(".vhd"):
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


def serve(run_dir: str, leaf: str, export: str = "vdi") -> Tuple[NbdServer, NbdExport]:
    srv = NbdServer(run_dir)
    ex = srv.start(export, ImageSpec("vhd", leaf), readonly=False)
    assert ex.engine and ex.engine["engine"] == native.NATIVE, ex.engine
    return srv, ex


def run_rounds(uri: str, conns: int, rounds: List[list]) -> List[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    res = subprocess.run([LIBNBD_PY, CLIENT], input=json.dumps({"uri": uri, "conns": conns, "rounds": rounds}),
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert "error" not in out, out
    return list(out["reads"])


def data_for(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def leaf_allocation(leaf: str) -> Dict[int, bytes]:
    """Allocated leaf blocks and their sector bitmaps (what the writer decided, beyond the bytes)."""
    with vhd.open_image(leaf) as img:
        return {blk: bytes(img.bitmap(blk)) for blk, e in enumerate(img.bat) if e != C.BAT_UNUSED}


def smapi_check(path: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(os.path.realpath(shutil.which("python3") or "")), "smapi")
    venv_exe = os.path.join(os.path.dirname(os.path.abspath(os.sys.executable)), "smapi")
    return subprocess.run([venv_exe if os.path.exists(venv_exe) else exe, "vhd", "check", path],
                          capture_output=True, text=True, timeout=120)


def io_range(draw: Any, size: int) -> Tuple[int, int]:
    """(offset, length) of one I/O on a disk of `size` bytes, drawn with hypothesis's `draw`: at any byte, on
    sector boundaries, or around a block's edges (where the VHD bitmap and allocation paths split)."""
    from hypothesis import strategies as st

    kind = draw(st.sampled_from(["any", "sector", "block"]))
    if kind == "block":
        off = draw(st.integers(0, size // BLOCK - 1)) * BLOCK + draw(st.sampled_from([0, 4096, BLOCK - 4096]))
        n = draw(st.sampled_from([4096, BLOCK, BLOCK + 8192]))
    elif kind == "sector":
        off = draw(st.integers(0, size // 512 - 1)) * 512
        n = draw(st.integers(1, 600)) * 512
    else:
        off = draw(st.integers(0, size - 1))
        n = draw(st.integers(1, 300000))
    return off, max(1, min(n, size - off))


def claim(taken: List[Tuple[int, int]], kind: str, off: int, n: int) -> bool:
    """Reserve [off, off+n) for one op of a round whose ops run concurrently (their ranges must be disjoint); False
    if it overlaps an earlier op's. A zero ("z") takes its whole blocks: whether it writes depends on whether the
    chain maps its block, so an allocating write in the same block on another connection would race with it (the
    sequential reference always sees the write first)."""
    lo, hi = off, off + n
    if kind == "z":
        lo, hi = lo - lo % BLOCK, -(-hi // BLOCK) * BLOCK
    if any(lo < e and s < hi for s, e in taken):
        return False
    taken.append((lo, hi))
    return True


def draw_rounds(draw: Any, size: int, kinds: str, max_rounds: int) -> List[list]:
    """Rounds of ops drawn with hypothesis's `draw` (each op's kind from `kinds`: w/W write, z zero, t trim, r read,
    f flush); a round's ranges are disjoint because its ops run concurrently on several connections."""
    from hypothesis import strategies as st

    rounds = []
    for _ in range(draw(st.integers(1, max_rounds))):
        ops: List[list] = []
        taken: List[Tuple[int, int]] = []
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(kinds))
            if kind == "f":
                ops.append(["f"])
                continue
            off, n = io_range(draw, size)
            if not claim(taken, kind, off, n):
                continue
            ops.append([kind, off, n, draw(st.integers(0, 2**31))] if kind in "wW" else [kind, off, n])
        rounds.append(ops)
    return rounds


#: bytes per write slot of tests/datapath/crash_client.py (one write per slot, slots in a shuffled order)
CRASH_SLOT = 96 * 1024


def crash_write(seed: int, i: int) -> Tuple[int, bytes]:
    """(offset in its slot, data) of the crash client's write `i`, drawn exactly as crash_client.py draws it."""
    r = random.Random(seed * 100003 + i)
    off = r.randrange(CRASH_SLOT - 1)
    n = r.randrange(1, CRASH_SLOT - off + 1)
    return off, r.randbytes(n)


def flushed_writes(out: str) -> List[int]:
    """The writes the crash client reported flushed (its "F i,j,..." lines), sorted."""
    flushed = set()
    for line in out.splitlines():
        if line.startswith("F ") and len(line) > 2:
            flushed.update(int(x) for x in line[2:].split(","))
    return sorted(flushed)


def assert_flushed_present(disk: bytes, seed: int, slots: int, flushed: List[int]) -> None:
    """Every flushed write of the crash client (seed, slots) reads back from `disk`."""
    order = list(range(slots))
    random.Random(seed).shuffle(order)
    for i in flushed:
        off, data = crash_write(seed, i)
        pos = order[i] * CRASH_SLOT + off
        assert disk[pos : pos + len(data)] == data, f"flushed write {i} lost"
