"""Model-based: random sequences of VDI operations against a dict of bytearrays; every live VDI must read like
its model, and SR.scan must list exactly the model's VDIs."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smapi.testing.client import Factory, MiB, SRClient, pattern, provisioned, sha
from smapi.testing.features import needs

Op = Tuple

# Indices pick among the live VDIs modulo their number, so every generated op applies to whatever exists.
ops = st.one_of(
    st.tuples(st.just("create"), st.integers(1, 3 * MiB)),
    st.tuples(st.just("write"), st.integers(0, 99), st.floats(0, 1), st.integers(1, 70_000), st.integers(0, 999)),
    st.tuples(st.just("write"), st.integers(0, 99), st.floats(0, 1), st.integers(1, 70_000), st.integers(0, 999)),
    st.tuples(st.just("snapshot"), st.integers(0, 99)),
    st.tuples(st.just("clone"), st.integers(0, 99)),
    st.tuples(st.just("destroy"), st.integers(0, 99)),
    st.tuples(st.just("resize"), st.integers(0, 99), st.integers(0, 2 * MiB + 1000)),
    st.tuples(st.just("gc")),
    st.tuples(st.just("reload")),
)

_example = itertools.count()


def _check(sr: SRClient, model: Dict[str, bytearray], where: str) -> None:
    scanned = sr.scan()
    assert set(scanned) == set(model), f"{where}: scan {sorted(scanned)} != model {sorted(model)}"
    for vdi, data in model.items():
        assert scanned[vdi]["virtual_size"] == len(data), f"{where}: size of {vdi}"
        assert sha(sr.read_all(vdi)) == sha(bytes(data)), f"{where}: contents of {vdi}"


def _apply(sr: SRClient, model: Dict[str, bytearray], op: Op) -> None:
    live: List[str] = sorted(model)
    kind = op[0]
    if kind == "create":
        info = sr.create(op[1])
        assert info["virtual_size"] >= op[1]
        model[info["vdi"]] = bytearray(info["virtual_size"])
    elif kind == "gc":
        sr.gc()
    elif kind == "reload":
        sr.reload()
    elif live:
        vdi = live[op[1] % len(live)]
        data = model[vdi]
        if kind == "write":
            length = min(op[3], len(data))
            offset = int(op[2] * (len(data) - length))
            chunk = pattern(op, length)
            sr.write(vdi, offset, chunk)
            data[offset:offset + length] = chunk
        elif kind in ("snapshot", "clone"):
            new = getattr(sr, kind)(vdi)["vdi"]
            assert new not in model
            model[new] = bytearray(data)
        elif kind == "destroy":
            sr.destroy(vdi)
            del model[vdi]
        elif kind == "resize":
            asked = len(data) + op[2]
            got = sr.resize(vdi, asked)
            assert got >= asked
            data.extend(bytes(got - len(data)))


@needs("VDI_SNAPSHOT", "VDI_CLONE", "VDI_RESIZE", "open_vdi", "gc")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(sequence=st.lists(ops, min_size=1, max_size=18))
def test_random_operations_match_the_model(factory: Factory, tmp_path: Path, sequence: List[Op]) -> None:
    # One fresh SR per example: examples must not see each other's VDIs or chains.
    with pytest.MonkeyPatch.context() as mp, provisioned(factory, tmp_path / f"ex{next(_example)}", mp) as sr:
        model: Dict[str, bytearray] = {}
        for step, op in enumerate(sequence):
            _apply(sr, model, op)
            if op[0] in ("gc", "reload"):
                _check(sr, model, f"after step {step} {op}")
            else:
                assert set(sr.scan()) == set(model), f"after step {step} {op}"
        _check(sr, model, "at the end")
        sr.gc()
        _check(sr, model, "after a final gc")
