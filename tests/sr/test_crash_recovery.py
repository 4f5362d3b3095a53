"""Journal replay: a process killed at every journaled step of every multi-step verb, and of the collector's
coalesce and leaf-coalesce, loses nothing.

Each case builds an SR, records the checksum of every VDI, runs the verb in a subprocess with
`SMAPI_FAULT=<step>` (the engine exits with status 9 there), then attaches the SR from a fresh run directory
(a rebooted host), scans, and checks: every VDI that existed still reads the same, the verb either happened or
did not (both are allowed, nothing in between), volumes and records match, VHDs pass `smapi.vhd.check`, and the
verb can be run again to completion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from smapi.sr.faults import FAULT_EXIT_CODE
from tests.sr.helpers import FileSR, MiB, pattern, sha

REPO = Path(__file__).resolve().parents[2]

SPLIT = ["renamed", "leaf", "hidden"]
STEPS: Dict[str, List[str]] = {
    "snapshot": ["snapshot.begin"] + [f"snapshot.{s}" for s in SPLIT] + ["snapshot.child", "snapshot.committed"],
    "clone": ["clone.begin"] + [f"clone.{s}" for s in SPLIT] + ["clone.child", "clone.committed"],
    "compose": ["compose.begin"] + [f"compose.{s}" for s in SPLIT]
               + ["compose.copied", "compose.reparented", "compose.committed"],
    "resize": ["resize.begin", "resize.grown", "resize.committed"],
    "destroy": ["destroy.begin", "destroy.committed", "destroy.removed"],
    "persist": [f"persist.{s}" for s in SPLIT] + ["persist.committed"],
    "create": ["create.volume"],
    "coalesce": ["coalesce.begin", "coalesce.copied", "coalesce.relinked", "coalesce.committed",
                 "coalesce.removed"],
    "leaf-coalesce": [f"leaf-coalesce.{s}" for s in ("begin", "copied", "decided", "renamed", "unhidden",
                                                      "committed")],
}
#: leaf-coalesce steps after which the merge is decided: recovery finishes it instead of forgetting it
LEAF_DECIDED = ("leaf-coalesce.decided", "leaf-coalesce.renamed", "leaf-coalesce.unhidden",
                "leaf-coalesce.committed")


def _setup(sr: FileSR, op: str) -> Dict[str, Any]:
    vdi = sr.create(4 * MiB + 512, name_label="victim")
    sr.write(vdi, 0, pattern("base", 2 * MiB))
    if op == "compose":
        other = sr.create(4 * MiB + 512, name_label="other")
        sr.write(other, MiB, pattern("other", 8192))
        return {"vdi1": vdi, "vdi2": other}
    if op == "destroy":
        return {"vdi": sr.snapshot(vdi)}
    if op == "coalesce":
        # two hidden levels with one child each: the upper one is coalesced into the lower one
        sr.v("VDI.destroy", vdi=sr.snapshot(vdi))
        sr.write(vdi, MiB, pattern("middle", MiB))
        sr.v("VDI.destroy", vdi=sr.snapshot(vdi))
        sr.write(vdi, 3 * MiB, pattern("top", 4096))
        return {"vdi": vdi}
    if op == "leaf-coalesce":
        # one hidden base copy serving the VDI alone, with data in both; an unrelated VDI beside them
        sr.v("VDI.destroy", vdi=sr.snapshot(vdi))
        sr.write(vdi, MiB + 4096, pattern("leaf", 1_500_000))
        other = sr.create(MiB, name_label="other")
        sr.write(other, 0, pattern("other", 4096))
        return {"vdi": vdi}
    if op == "resize":
        return {"vdi": vdi, "size": 9 * MiB}
    return {"vdi": vdi}


def _composed_digest() -> str:
    """vdi2 after compose: vdi1's content under vdi2's own (non-zero) sectors."""
    data = bytearray(4 * MiB + 512)
    data[: 2 * MiB] = pattern("base", 2 * MiB)
    data[MiB: MiB + 8192] = pattern("other", 8192)
    return sha(bytes(data))


def _run(sr: FileSR, op: str, args: Dict[str, Any], fault: str) -> int:
    env = {**os.environ, "SMAPI_FAULT": fault, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tests.sr._crash_worker", op, sr.path, json.dumps(args)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    return proc.returncode


def _cases() -> List[Tuple[str, str]]:
    return [(op, step) for op, steps in STEPS.items() for step in steps]


@pytest.mark.parametrize("op,step", _cases(), ids=[s for _, s in _cases()])
def test_killed_at_every_step_loses_nothing(op: str, step: str, env, tmp_path, fresh_run_dir) -> None:
    os.environ["SMAPI_GC"] = "off"  # the collector runs only when a case asks for it (restored by monkeypatch)
    sr = FileSR(env.device_config["path"])
    sr.create_sr()
    sr.attach()
    args = _setup(sr, op)
    before = sr.digests()
    status = _run(sr, op, args, step)
    assert status == FAULT_EXIT_CODE, f"{step}: the process was not killed at the fault point (status {status})"

    fresh_run_dir("rebooted")
    sr.reload()
    sr.attach()
    after = sr.digests()
    for vdi, digest in before.items():
        if op == "destroy" and vdi == args["vdi"]:
            continue  # may be gone: the destroy may have been rolled forward
        if op == "compose" and vdi == args["vdi2"]:
            assert after[vdi] in (digest, _composed_digest()), f"{step}: vdi2 is neither as before nor composed"
            continue
        if op == "resize" and vdi == args["vdi"]:
            data = sr.read_all(vdi)  # grown or not: the old bytes are intact and the new ones read as zeros
            assert sha(data[: 4 * MiB + 512]) == digest and not any(data[4 * MiB + 512:]), step
            continue
        assert after.get(vdi) == digest, f"{step}: VDI {vdi} changed or vanished"
    extra = set(after) - set(before)
    _check_outcome(sr, op, args, before, extra)
    _check_direction(sr, op, args, before, after, step)
    if op == "leaf-coalesce":
        # attach alone settled it: finished once decided, forgotten before (the collector was dead)
        assert sr.document().depth(args["vdi"]) == (1 if step in LEAF_DECIDED else 2), step
        assert sr.stat(args["vdi"])["name_label"] == "victim"
    if op in ("coalesce", "leaf-coalesce"):
        sr.driver.gc(sr.sr)
    sr.assert_consistent()
    # the operation works again after recovery
    _again(sr, op, args)
    sr.assert_consistent()
    if op == "leaf-coalesce":
        assert sr.document().depth(args["vdi"]) == 1 and sr.digests() == before


def _check_outcome(sr: FileSR, op: str, args: Dict[str, Any], before: Dict[str, str], extra: set) -> None:
    if op in ("snapshot", "clone", "create"):
        assert len(extra) <= 1
        for new in extra:  # a snapshot or clone that was rolled forward has the source's content
            if op != "create":
                assert sha(sr.read_all(new)) == before[args["vdi"]]
    else:
        assert not extra


def _check_direction(sr: FileSR, op: str, args: Dict[str, Any], before: Dict[str, str], after: Dict[str, str],
                     step: str) -> None:
    """The SR-document commit decides: killed after it, the replay finishes the verb; before it, the replay undoes
    it (never rolling forward what its caller could not have seen succeed)."""
    if op in ("coalesce", "leaf-coalesce"):
        return  # the collector's own rules (checked above)
    done = step.endswith(".committed") or step == "destroy.removed"
    extra = set(after) - set(before)
    if op in ("snapshot", "clone", "create"):
        assert len(extra) == (1 if done else 0), step
    elif op == "compose":
        assert after[args["vdi2"]] == (_composed_digest() if done else before[args["vdi2"]]), step
    elif op == "resize":
        size = sr.stat(args["vdi"])["virtual_size"]
        assert (size >= args["size"]) if done else (size == 4 * MiB + 512), (step, size)
    elif op == "destroy":
        assert (args["vdi"] in after) == (not done), step
    elif op == "persist":
        assert sr.stat(args["vdi"])["persistent"] == (not done), step


def _again(sr: FileSR, op: str, args: Dict[str, Any]) -> None:
    actions: Dict[str, Callable[[], Any]] = {
        "snapshot": lambda: sr.snapshot(args["vdi"]),
        "clone": lambda: sr.clone(args["vdi"]),
        "compose": lambda: sr.v("VDI.compose", vdi1=args["vdi1"], vdi2=args["vdi2"]),
        "resize": lambda: sr.v("VDI.resize", vdi=args["vdi"], new_size=args["size"]),
        "destroy": lambda: args["vdi"] in sr.scan() and sr.v("VDI.destroy", vdi=args["vdi"]),
        "persist": lambda: sr.v("VDI.set_persistent", vdi=args["vdi"], persistent=False),
        "create": lambda: sr.create(MiB),
        "coalesce": lambda: sr.driver.gc(sr.sr),
        "leaf-coalesce": lambda: sr.driver.gc(sr.sr),
    }
    actions[op]()
