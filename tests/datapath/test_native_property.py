"""The native plugin against the reference model: the same random operations go to the C plugin (over several
concurrent NBD connections) and to the Python VHD library; bytes read, chain contents, leaf allocation and bitmaps
must agree, and the files the C code wrote must pass ``smapi vhd check`` (and ``qemu-img compare`` where qemu can
read the image: a dynamic disk)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smapi.vhd as vhd
from smapi.datapath import native

from .conftest import PREFIX
from .dptestlib import chain_bytes
from .nativelib import (
    BLOCK,
    build_chain,
    copy_dir,
    data_for,
    draw_rounds,
    leaf_allocation,
    require_native,
    run_rounds,
    serve,
    smapi_check,
)


@st.composite
def scenarios(draw):
    size = draw(st.integers(2, 5)) * BLOCK
    depth = draw(st.one_of(st.integers(1, 4), st.just(30), st.integers(5, 30)))
    rounds = draw_rounds(draw, size, "wwwWrrzf", 6)
    return size, depth, draw(st.integers(0, 2**31)), draw(st.integers(1, 4)), draw(st.booleans()), rounds


def _apply_reference(leaf: str, rounds) -> list:
    """The rounds through the Python library (sequentially: one round's ranges are disjoint)."""
    reads = []
    with vhd.open_chain(leaf, writable=True) as chain:
        for ops in rounds:
            for op in ops:
                if op[0] in "wW":
                    chain.write(op[1], data_for(op[3], op[2]))
                elif op[0] == "z":
                    if chain.allocated(op[1], op[2]):  # the datapath's zero: nothing to do where nothing maps
                        chain.write(op[1], bytes(op[2]))
                elif op[0] == "r":
                    reads.append(hashlib.sha256(chain.read(op[1], op[2])).hexdigest())
    return reads


@settings(max_examples=int(os.environ.get("SMAPI_NATIVE_EXAMPLES", "12")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_native_matches_python_library(scenario):
    require_native()
    size, depth, seed, conns, direct, rounds = scenario
    work = tempfile.mkdtemp(prefix=PREFIX)
    srv = None
    try:
        base = os.path.join(work, "base")
        os.makedirs(base)
        leaf_name = os.path.basename(build_chain(base, size, depth, seed))
        copy_dir(base, os.path.join(work, "nat"))
        copy_dir(base, os.path.join(work, "ref"))
        nat_leaf, ref_leaf = os.path.join(work, "nat", leaf_name), os.path.join(work, "ref", leaf_name)
        os.environ[native.ENV_DIRECT] = "1" if direct else ""  # O_DIRECT: the bounce-buffer paths too
        try:
            srv, ex = serve(os.path.join(work, "run"), nat_leaf)
        finally:
            del os.environ[native.ENV_DIRECT]
        got = run_rounds(ex.uri, conns, rounds)
        srv.stop("vdi")
        srv = None
        want = _apply_reference(ref_leaf, rounds)
        assert got == want
        assert chain_bytes(nat_leaf) == chain_bytes(ref_leaf)
        assert leaf_allocation(nat_leaf) == leaf_allocation(ref_leaf)
        res = smapi_check(nat_leaf)
        assert res.returncode == 0, res.stdout + res.stderr
        if depth == 1:
            raw = os.path.join(work, "ref.raw")
            with open(raw, "wb") as f:
                f.write(chain_bytes(ref_leaf))
            cmp = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", nat_leaf, raw],
                                 capture_output=True, text=True, timeout=60)
            assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    finally:
        if srv is not None:
            srv.stop("vdi")
        shutil.rmtree(work, ignore_errors=True)
