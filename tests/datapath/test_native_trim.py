"""Trim where VHD allows it (``vhdtrim.h``, :mod:`smapi.vhd.trim`): the native and the Python plugin release the
same bytes of the leaf (hole punching of whole 4 KiB units of leaf-allocated data), a trimmed range reads as its
previous content or zeros and everything else exactly as the model, the files stay valid (``smapi vhd check``,
``qemu-img compare``), and the file really gets sparser."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from typing import List, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import smapi.vhd as vhd
from smapi.datapath import native
from smapi.datapath.model import ImageSpec
from smapi.datapath.nbd import READONLY_SUFFIX, NbdExport, NbdServer, nbd_uri

from .conftest import PREFIX
from .dptestlib import chain_bytes, libnbd
from .nativelib import (
    BLOCK,
    build_chain,
    copy_dir,
    data_for,
    draw_rounds,
    leaf_allocation,
    require_native,
    run_rounds,
    smapi_check,
)

ENGINES = [native.NATIVE, native.PYTHON]


def serve(run_dir: str, leaf: str, engine: str, direct: bool = False, kind: str = "vhd") -> Tuple[NbdServer, NbdExport]:
    srv = NbdServer(run_dir)
    saved = {k: os.environ.get(k) for k in (native.ENV_SWITCH, native.ENV_DIRECT)}
    os.environ[native.ENV_SWITCH] = "python" if engine == native.PYTHON else ""
    os.environ[native.ENV_DIRECT] = "1" if direct else ""
    try:
        ex = srv.start("vdi", ImageSpec(kind, leaf), readonly=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert ex.engine and ex.engine["engine"] == engine, ex.engine
    return srv, ex


def can_trim(uri: str) -> bool:
    res = libnbd("print(h.can_trim())", uri)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip() == "True"


def allocated_bytes(path: str) -> int:
    return os.stat(path).st_blocks * 512


@pytest.mark.parametrize("engine", ENGINES)
def test_trim_releases_leaf_data_and_reads_zeros(scratch: str, engine: str) -> None:
    """Two full leaf blocks over a parent with data: a trim of all but their first and last 4 KiB releases that
    much of the file and reads zeros (never the parent's bytes); a trim where the leaf has no block, or of less than
    a whole 4 KiB unit, changes nothing; the image passes check afterwards."""
    require_native()
    size = 4 * BLOCK
    base = os.path.join(scratch, "base.vhd")
    vhd.create_dynamic(base, size)
    with vhd.open_chain(base, writable=True) as chain:
        chain.write(0, b"\xa5" * size)
    leaf = os.path.join(scratch, "leaf.vhd")
    vhd.snapshot(base, leaf)
    srv, ex = serve(os.path.join(scratch, "run"), leaf, engine)
    try:
        assert can_trim(ex.uri)
        run_rounds(ex.uri, 1, [[["w", 0, 2 * BLOCK, 1]], [["f"]]])
        before = allocated_bytes(leaf)
        run_rounds(ex.uri, 1, [[["t", 4096, 2 * BLOCK - 8192], ["t", 2 * BLOCK, BLOCK],  # the leaf has no block
                                ["t", 2 * BLOCK + BLOCK + 100, 4000]], [["f"]]])            # no whole unit
        after = allocated_bytes(leaf)
        got = run_rounds(ex.uri, 1, [[["r", 0, size]]])
    finally:
        srv.stop("vdi")
    data = data_for(1, 2 * BLOCK)
    want = data[:4096] + bytes(2 * BLOCK - 8192) + data[-4096:] + b"\xa5" * (2 * BLOCK)
    assert got == [hashlib.sha256(want).hexdigest()]
    assert chain_bytes(leaf) == want
    assert before - after >= 2 * BLOCK - 8192 - 65536, (before, after)  # less an extent-tree block or so
    res = smapi_check(leaf)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["raw", "fixed"])
def test_raw_file_and_fixed_leaf_release_whole_units(scratch: str, engine: str, kind: str) -> None:
    """A raw image or a fixed VHD: the whole 4 KiB units of the trimmed range read zeros and leave the file; the
    partial units at its edges and the fixed disk's footer stay."""
    require_native()
    size = 2 * BLOCK + 1024
    path = os.path.join(scratch, "disk." + kind)
    if kind == "fixed":
        vhd.create_fixed(path, size)
    else:
        with open(path, "wb") as f:
            f.truncate(size)
    srv, ex = serve(os.path.join(scratch, "run"), path, engine, kind="raw" if kind == "raw" else "vhd")
    try:
        assert can_trim(ex.uri)
        run_rounds(ex.uri, 1, [[["w", 0, size, 3]], [["f"]]])
        before = allocated_bytes(path)
        run_rounds(ex.uri, 1, [[["t", 1000, size - 1000]], [["f"]]])
        after = allocated_bytes(path)
        got = run_rounds(ex.uri, 1, [[["r", 0, size]]])
    finally:
        srv.stop("vdi")
    data = data_for(3, size)
    want = data[:4096] + bytes(2 * BLOCK - 4096) + data[2 * BLOCK :]
    assert got == [hashlib.sha256(want).hexdigest()]
    assert before - after >= 2 * BLOCK - 4096 - 65536, (before, after)
    if kind == "fixed":
        assert chain_bytes(path) == want and os.path.getsize(path) == size + 512
        res = smapi_check(path)
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_read_only_export_does_not_offer_trim(scratch: str, engine: str) -> None:
    require_native()
    leaf = os.path.join(scratch, "leaf.vhd")
    vhd.create_dynamic(leaf, 2 * BLOCK)
    srv, ex = serve(os.path.join(scratch, "run"), leaf, engine)
    try:
        assert can_trim(ex.uri)
        assert not can_trim(nbd_uri(ex.socket, "vdi" + READONLY_SUFFIX))
    finally:
        srv.stop("vdi")


# ------------------------------------------------------------------------------------------------ property test
@st.composite
def scenarios(draw):
    size = draw(st.integers(2, 5)) * BLOCK
    depth = draw(st.one_of(st.integers(1, 3), st.integers(4, 12)))
    rounds = draw_rounds(draw, size, "wwWzttttrf", 6)
    return size, depth, draw(st.integers(0, 2**31)), draw(st.integers(1, 4)), draw(st.booleans()), rounds


def _model(start: bytes, rounds) -> Tuple[bytearray, bytearray]:
    """(bytes, mask): what each byte must read, and 1 where it was trimmed since it was last written (it may then
    read as zeros instead)."""
    want, maybe = bytearray(start), bytearray(len(start))
    for ops in rounds:
        for op in ops:
            if op[0] in "wWzt":
                lo, hi = op[1], op[1] + op[2]
                if op[0] == "t":
                    maybe[lo:hi] = b"\x01" * (hi - lo)
                    continue
                want[lo:hi] = data_for(op[3], op[2]) if op[0] in "wW" else bytes(op[2])
                maybe[lo:hi] = bytes(hi - lo)
    return want, maybe


def assert_matches_model(got: bytes, want: bytearray, maybe: bytearray) -> None:
    """Untrimmed bytes exactly as the model; in each sector, the trimmed bytes read all old or all zeros."""
    assert len(got) == len(want)
    for s in range(0, len(got), 512):
        g, w, m = got[s : s + 512], want[s : s + 512], maybe[s : s + 512]
        if g == w:
            continue
        assert any(m), f"untrimmed sector at {s} differs from the model"
        for i in range(len(g)):
            if not m[i]:
                assert g[i] == w[i], f"untrimmed byte {s + i} differs from the model"
        trimmed = bytes(g[i] for i in range(len(g)) if m[i])
        assert trimmed == bytes(len(trimmed)), f"trimmed bytes of sector {s} are neither old nor zeros"


@settings(max_examples=int(os.environ.get("SMAPI_NATIVE_EXAMPLES", "10")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
# always: a differencing leaf over data, trimmed in full, partial and unallocated blocks, unaligned edges included
@example((3 * BLOCK, 2, 5, 2, False, [[["w", 0, BLOCK + 8192, 1], ["W", 2 * BLOCK + 512, 70000, 2]],
                                      [["t", 1000, BLOCK + 4096], ["t", 2 * BLOCK, 300000], ["r", 0, 3 * BLOCK]],
                                      [["f"], ["w", 8192, 4096, 3]], [["r", 0, 3 * BLOCK]]]))
def test_native_and_python_trim_alike(scenario) -> None:
    """The same rounds go to the native plugin (several connections) and the Python plugin (one): reads, the chain's
    bytes, the leaf's allocation and bitmaps are identical (same release rule), and the bytes agree with the model
    as far as trim allows."""
    require_native()
    size, depth, seed, conns, direct, rounds = scenario
    work = tempfile.mkdtemp(prefix=PREFIX)
    servers: List[NbdServer] = []
    try:
        base = os.path.join(work, "base")
        os.makedirs(base)
        leaf_name = os.path.basename(build_chain(base, size, depth, seed))
        start = chain_bytes(os.path.join(base, leaf_name))
        leaves = {}
        reads = {}
        for engine in ENGINES:
            copy_dir(base, os.path.join(work, engine))
            leaves[engine] = os.path.join(work, engine, leaf_name)
            srv, ex = serve(os.path.join(work, "run-" + engine), leaves[engine], engine,
                            direct and engine == native.NATIVE)
            servers.append(srv)
            reads[engine] = run_rounds(ex.uri, conns if engine == native.NATIVE else 1, rounds)
            srv.stop("vdi")
            servers.remove(srv)
        nat, py = leaves[native.NATIVE], leaves[native.PYTHON]
        assert reads[native.NATIVE] == reads[native.PYTHON]
        got = chain_bytes(nat)
        assert got == chain_bytes(py)
        assert leaf_allocation(nat) == leaf_allocation(py)
        assert_matches_model(got, *_model(start, rounds))
        for leaf in (nat, py):
            res = smapi_check(leaf)
            assert res.returncode == 0, res.stdout + res.stderr
        if depth == 1:  # qemu reads the trimmed leaf as the library does (qemu's vpc has no differencing chains)
            raw = os.path.join(work, "nat.raw")
            with open(raw, "wb") as f:
                f.write(got)
            cmp = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", nat, raw],
                                 capture_output=True, text=True, timeout=60)
            assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    finally:
        for srv in servers:
            srv.stop("vdi")
        shutil.rmtree(work, ignore_errors=True)

