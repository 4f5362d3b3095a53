"""Changed-block tracking survives a process killed at every journaled step of the verbs that move a tracked
VDI's data: snapshot, clone, reset-on-boot split, resize, data_destroy, and the collector's coalesce.

Each case writes known blocks between snapshots, kills the verb at one fault point, attaches the SR from a fresh
run directory (a rebooted host), then writes more and takes a final snapshot. Between any two snapshots the
reported blocks must be exactly the blocks written in between (every write fills whole 64 KiB blocks with new
data, so "changed" and "touched" coincide); a snapshot the killed verb left behind must report a superset of what
was written before it and nothing that was not written.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

from smapi.sr.faults import FAULT_EXIT_CODE
from tests.sr.helpers import FileSR, MiB, pattern
from tests.sr.test_crash_recovery import STEPS

REPO = Path(__file__).resolve().parents[2]
G = 64 * 1024

CASES: List[Tuple[str, str]] = (
    [("snapshot", s) for s in STEPS["snapshot"]] + [("clone", s) for s in STEPS["clone"]]
    + [("persist", s) for s in STEPS["persist"]] + [("resize", s) for s in STEPS["resize"]]
    + [("data-destroy", f"data-destroy.{s}") for s in ("begin", "made", "swapped", "committed")]
    + [("gc", s) for s in STEPS["coalesce"]]
)


def _blocks(sr: FileSR, a: str, b: str) -> Set[int]:
    raw = base64.b64decode(sr.v("VDI.list_changed_blocks", vdi_from=a, vdi_tp=b))
    return {i * 8 + j for i, byte in enumerate(raw) for j in range(8) if byte & (0x80 >> j)}


def _write_blocks(sr: FileSR, vdi: str, blocks: Set[int], tag: str) -> Set[int]:
    for blk in sorted(blocks):
        sr.write(vdi, blk * G, pattern((tag, blk), G))
    return set(blocks)


@pytest.mark.parametrize("op,step", CASES, ids=[s for _, s in CASES])
def test_tracking_survives_a_kill(op: str, step: str, env, tmp_path, fresh_run_dir) -> None:
    os.environ["SMAPI_GC"] = "off"
    sr = FileSR(env.device_config["path"], sr=str(uuid.uuid4()))
    sr.create_sr()
    sr.attach()
    vdi = sr.create(4 * MiB)
    sr.v("VDI.enable_cbt", vdi=vdi)
    snaps: List[str] = [sr.snapshot(vdi)]
    written: Dict[str, Set[int]] = {}  # blocks written after each snapshot, until the next
    written[snaps[0]] = _write_blocks(sr, vdi, {1, 5, 40}, "a")
    target = vdi
    if op in ("data-destroy", "gc"):
        snaps.append(sr.snapshot(vdi))
        written[snaps[1]] = _write_blocks(sr, vdi, {5, 7}, "b")
        # data_destroy of the first snapshot leaves its base copy with one child: a coalescable chain
        if op == "gc":
            sr.v("VDI.data_destroy", vdi=snaps[0])
        target = snaps[0] if op == "data-destroy" else vdi
    known = set(sr.scan())

    env_vars = {**os.environ, "SMAPI_FAULT": step, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tests.sr._cbt_crash_worker", op, sr.path, target, sr.sr],
                          env=env_vars, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == FAULT_EXIT_CODE, (step, proc.stderr[-2000:])

    fresh_run_dir("rebooted")
    sr.reload()
    sr.attach()
    left = [v for v in set(sr.scan()) - known if sr.stat(v)["is_a_snapshot"]]
    before_kill = set().union(*written.values())
    for extra in left:  # a snapshot the killed verb committed: what was written before it, at most
        got = _blocks(sr, snaps[0], extra)
        assert before_kill <= got <= before_kill, (step, got)
    if op == "gc":
        sr.driver.gc(sr.sr)
    last = snaps[-1]
    written.setdefault(last, set())
    written[last] |= _write_blocks(sr, vdi, {2, 5, 63}, "c")
    final = sr.snapshot(vdi)
    order = snaps + [final]
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            expect = set().union(*(written.get(s, set()) for s in order[i:order.index(b)]))
            assert _blocks(sr, a, b) == expect, (step, a, b)
    sr.driver.gc(sr.sr)
    assert _blocks(sr, snaps[0], final) == before_kill | {2, 5, 63}
    sr.assert_consistent()
