"""Crash recovery: a process killed at each journaled step of snapshot, clone, resize, destroy and of garbage
collection (coalesce) loses nothing.

The steps are not listed here: they are discovered by running the operation once in-process and recording
every fault point the engine passes (`smapi.sr.faults.fault_point`), so a step added to the engine is tested
without touching this file. Then, for each step, a per-verb executable runs the operation with
`SMAPI_FAULT=<step>` and dies there; a fresh driver instance attaches and scans the SR, and every VDI that
existed must read exactly as before, while the interrupted operation has either fully happened or not at all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from smapi.interface.errors import Backend_error, Vdi_does_not_exist
from smapi.rpc.client import connect
from smapi.rpc.plugin_dir import install_plugin
from smapi.sr.enginedriver import EngineDriver
from smapi.testing.client import Factory, MiB, SRClient, pattern, provisioned
from smapi.testing.features import needs

State = Dict[str, Tuple[Dict[str, Any], str]]
#: record fields that may legitimately change while the data stays the same (sizes on disk, parent pointers)
VOLATILE = {"physical_utilisation", "sm_config"}
GROWN = 5 * MiB + 7


def _state(sr: SRClient) -> State:
    return {vdi: ({k: v for k, v in info.items() if k not in VOLATILE}, sr.digest(vdi))
            for vdi, info in sr.scan().items()}


def _prepare(sr: SRClient, op: str) -> Dict[str, str]:
    """A small tree: a leaf with a snapshot below it and data in both layers, plus an unrelated VDI.

    For "gc" the leaf gets a second snapshot and both snapshots are destroyed (with automatic collection off):
    its chain is then made of hidden images with one child each, which is what coalesce works on.
    """
    leaf = sr.create(2 * MiB, name_label="leaf")["vdi"]
    sr.write(leaf, 0, pattern("base layer", 2 * MiB))
    snap = sr.snapshot(leaf)["vdi"]
    sr.write(leaf, MiB - 300, pattern("top layer", 70_000))
    other = sr.create(MiB, name_label="other")["vdi"]
    sr.write(other, 512, b"unrelated" * 300)
    if op == "gc":
        snap2 = sr.snapshot(leaf)["vdi"]
        sr.write(leaf, 3000, pattern("third layer", 9000))
        sr.destroy(snap)
        sr.destroy(snap2)
    return {"leaf": leaf, "snap": snap, "other": other}


GC_SCRIPT = """
import sys
from smapi.core.driver import load_driver
from smapi.testing.client import find_hook
find_hook(load_driver(sys.argv[1]), "gc")(sys.argv[2])
"""


def _operation(op: str, call: Callable[..., Any], vdis: Dict[str, str],
               stat: Callable[[str], Dict[str, Any]]) -> None:
    if op in ("snapshot", "clone"):
        call(f"VDI.{op}", vdi_info=stat(vdis["leaf"]))
    elif op == "resize":
        call("VDI.resize", vdi=vdis["leaf"], new_size=GROWN)
    elif op == "destroy":
        # the snapshot: its destruction leaves the hidden base with one child, which GC may coalesce
        call("VDI.destroy", vdi=vdis["snap"])
    elif op == "gc":
        call("gc")
    else:  # pragma: no cover - the parametrisation below names every op
        raise AssertionError(op)


def _over(client: Any, sr: str) -> Callable[..., Any]:
    """A verb caller on `sr` through `client` (here: per-verb executables, one process per call)."""
    return lambda verb, **args: client.call(verb, dbg="crash", sr=sr, **args)


def _fault_points(fn: Callable[[], None]) -> List[str]:
    """The fault points `fn` passes, in order, found by profiling calls to the engine's fault_point."""
    try:
        from smapi.sr.faults import fault_point
    except ImportError as e:
        pytest.fail(f"the SR engine's fault-injection hook is missing ({e}); crash recovery cannot be tested")
    code = fault_point.__code__
    seen: List[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            name = frame.f_locals[code.co_varnames[0]]
            if name not in seen:
                seen.append(name)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(previous)
    return seen


def _check(op: str, vdis: Dict[str, str], before: State, after: State, where: str) -> Optional[str]:
    """What is wrong with `after` (None when nothing is), given the state before the interrupted op."""
    leaf, snap = vdis["leaf"], vdis["snap"]
    new = sorted(set(after) - set(before))
    for vdi, (info, digest) in before.items():
        if vdi not in after:
            if op == "destroy" and vdi == snap:
                continue  # the destroy happened
            return f"{where}: {vdi} ({info['name_label']}) is gone"
        got_info, got_digest = after[vdi]
        if op == "resize" and vdi == leaf:
            old = info["virtual_size"]
            size = got_info["virtual_size"]
            if size != old and size < GROWN:
                return f"{where}: leaf has size {size}, neither {old} nor >= {GROWN}"
            continue  # contents checked below
        if got_info != info:
            return f"{where}: record of {vdi} changed: {info} -> {got_info}"
        if got_digest != digest:
            return f"{where}: contents of {vdi} changed"
    if op in ("snapshot", "clone"):
        if len(new) > 1:
            return f"{where}: {len(new)} new VDIs from one {op}"
        for vdi in new:
            info, digest = after[vdi]
            if digest != before[leaf][1]:
                return f"{where}: the new {op} does not read like the leaf did"
            if info["is_a_snapshot"] != (op == "snapshot"):
                return f"{where}: the new {op} has is_a_snapshot={info['is_a_snapshot']}"
            if op == "snapshot" and info["snapshot_of"] != leaf:
                return f"{where}: the new snapshot is a snapshot of {info['snapshot_of']!r}"
    elif new:
        return f"{where}: {op} made new VDIs {new}"
    return None


def _leaf_contents_ok(sr: SRClient, leaf: str, before: bytes) -> Optional[str]:
    data = sr.read_all(leaf)
    if len(data) != sr.stat(leaf)["virtual_size"]:
        return f"the leaf reads {len(data)} bytes but its record says {sr.stat(leaf)['virtual_size']}"
    if data[:len(before)] != before or data[len(before):] != bytes(len(data) - len(before)):
        return "the leaf's data changed across the interrupted resize"
    return None


def _recover_and_check(sr: SRClient, op: str, step: str, vdis: Dict[str, str], before: State,
                       leaf_before: bytes) -> Optional[str]:
    # the next attach / scan, by a driver instance that knows nothing of the dead process
    sr.reload()
    sr.attach()
    after = _state(sr)
    problem = _check(op, vdis, before, after, f"{step}, after attach")
    if problem is None and op == "resize":
        problem = _leaf_contents_ok(sr, vdis["leaf"], leaf_before)
        problem = problem and f"{step}, after attach: {problem}"
    if problem is None:
        # recovery must leave a collectable SR, and collecting must not change anything visible
        sr.gc()
        problem = _check(op, vdis, before, _state(sr), f"{step}, after gc")
    if problem is None:
        # and the SR is not wedged: the same operation now runs to completion
        try:
            if op == "gc":
                sr.gc()
            elif op == "destroy" and vdis["snap"] not in after:
                with pytest.raises(Vdi_does_not_exist):
                    sr.stat(vdis["snap"])
            else:
                _operation(op, sr.v, vdis, sr.stat)
        except Exception as e:
            problem = f"{step}: repeating {op} after recovery failed: {e!r}"
    return problem


def _killed_at(op: str, step: str, sr: SRClient, vdis: Dict[str, str], plugin: str) -> Optional[str]:
    """Run `op` in another process that dies at `step`; None when it died there, else what happened instead."""
    from smapi.sr.faults import FAULT_EXIT_CODE

    if op == "gc":  # no verb: the collector runs in its own process anyway
        proc = subprocess.run([sys.executable, "-c", GC_SCRIPT, sr.sut.driver_spec, sr.sr],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != FAULT_EXIT_CODE:
            return f"{step}: the collector exited with {proc.returncode}, not at the fault point: {proc.stderr}"
        return None
    install_plugin(sr.sut.driver_spec, plugin, api="storage")
    try:
        _operation(op, _over(connect("exec://" + plugin), sr.sr), vdis, sr.stat)
    except Backend_error as e:
        # the exec transport reports a script that died without answering as SCRIPT_FAILED with its status
        if e.code == "SCRIPT_FAILED" and str(FAULT_EXIT_CODE) in e.backend_params:
            return None
        return f"{step}: expected death at the fault point, got {e}"
    return f"{step}: the per-verb process finished instead of dying at the fault point"


def _in_process(sr: SRClient) -> Callable[..., Any]:
    return lambda verb, **args: sr.gc() if verb == "gc" else sr.v(verb, **args)


@needs("VDI_SNAPSHOT", "VDI_CLONE", "VDI_RESIZE", "open_vdi", "gc")
@pytest.mark.parametrize("op", ["snapshot", "clone", "resize", "destroy", "gc"])
def test_a_process_killed_at_any_step_loses_nothing(factory: Factory, tmp_path: Path, op: str) -> None:
    with pytest.MonkeyPatch.context() as mp, provisioned(factory, tmp_path / "discover", mp) as sr:
        if op == "gc":
            mp.setenv("SMAPI_GC", "off")  # the garbage must still be there when the collector runs
        vdis = _prepare(sr, op)
        steps = _fault_points(lambda: _operation(op, _in_process(sr), vdis, sr.stat))
        if not steps and not isinstance(sr.driver, EngineDriver):
            # smapi can kill a process only where the SR engine marks a step; other drivers journal their own way
            pytest.skip(f"{op} passes no smapi.sr.faults fault point: the driver is not built on EngineDriver, so "
                        "crash recovery cannot be injected")
    assert steps, f"{op} passes no fault point: the engine journals nothing for it, so a crash is untestable"

    from smapi.sr.faults import ENV

    problems: List[str] = []
    for step in steps:
        with pytest.MonkeyPatch.context() as mp, provisioned(factory, tmp_path / step, mp) as sr:
            if op == "gc":
                mp.setenv("SMAPI_GC", "off")
            vdis = _prepare(sr, op)
            before = _state(sr)
            leaf_before = sr.read_all(vdis["leaf"])
            mp.setenv(ENV, step)
            try:
                problem = _killed_at(op, step, sr, vdis, str(tmp_path / step / "plugin"))
            finally:
                mp.delenv(ENV)
            if problem is None:
                try:
                    problem = _recover_and_check(sr, op, step, vdis, before, leaf_before)
                except Exception as e:  # report every step, not only the first that raises
                    problem = f"{step}: recovery raised {e!r}"
            if problem:
                problems.append(problem)
    assert not problems, f"{len(problems)} of {len(steps)} fault points of {op} lost or broke something:\n" + \
        "\n".join(problems)
