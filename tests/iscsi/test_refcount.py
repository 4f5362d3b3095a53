"""The per-(portal, IQN) session count: real files and flocks, other processes, and the kernel initiator's use of it
(iscsiadm itself replaced by a recorder: the kernel has no iSCSI here)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import List

import pytest

from smapi.drivers.iscsi.config import parse_target
from smapi.drivers.iscsi.initiator import write_state
from smapi.drivers.iscsi.kernel import KernelInitiator
from smapi.drivers.iscsi.libiscsi import LunInfo
from smapi.drivers.iscsi.refcount import Node

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IQN = "iqn.2026-11.org.smapi.test:shared"


def test_the_last_holder_out_is_told_so() -> None:
    node = Node("10.0.0.5:3260", IQN)
    with node.locked():
        assert node.add("sr-a") is True
        assert node.add("sr-b") is False
        assert node.add("sr-a") is False  # a repeated attach counts once
        assert node.holders() == ["sr-a", "sr-b"]
        assert node.remove("sr-a") is False
        assert node.remove("sr-a") is False  # a repeated detach too
        assert node.remove("sr-b") is True
    assert not os.path.exists(node.path)
    assert Node("10.0.0.5:3260", IQN).holders() == []
    assert Node("10.0.0.6:3260", IQN).path != node.path  # another portal is another session


_CHILD = """
import os, sys
sys.path.insert(0, {root!r})
os.environ["SMAPI_RUN_DIR"] = {run!r}
from smapi.drivers.iscsi.refcount import Node
node = Node("10.0.0.5:3260", {iqn!r})
{body}
"""


def _child(body: str, **kw: object) -> subprocess.Popen:
    code = _CHILD.format(root=ROOT, run=os.environ["SMAPI_RUN_DIR"], iqn=IQN, body=body)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            **kw)  # type: ignore[call-overload]


def test_another_process_holding_the_lock_blocks_us() -> None:
    holder = _child("with node.locked():\n    node.add('sr-child')\n    print('held', flush=True)\n"
                    "    sys.stdin.read()")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        got: List[List[str]] = []

        def take() -> None:
            with Node("10.0.0.5:3260", IQN).locked() as node:
                got.append(node.holders())

        t = threading.Thread(target=take, daemon=True)
        t.start()
        t.join(0.5)
        assert t.is_alive() and not got  # blocked on the child's flock
        holder.communicate("", timeout=10)
        t.join(10)
        assert got == [["sr-child"]]  # and then sees what the child counted
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_concurrent_processes_lose_no_count() -> None:
    body = "for i in range(20):\n    with node.locked():\n        node.add(f'sr-{{os.getpid()}}-{{i}}')"
    procs = [_child(body.replace("{{", "{").replace("}}", "}")) for _ in range(4)]
    for p in procs:
        p.communicate("", timeout=60)
        assert p.returncode == 0
    with Node("10.0.0.5:3260", IQN).locked() as node:
        assert len(node.holders()) == 80


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> List[List[str]]:
    """The kernel initiator with iscsiadm recorded and its LUN devices found by SCSI id in a fake table."""
    calls: List[List[str]] = []
    monkeypatch.setattr(KernelInitiator, "_adm", staticmethod(lambda args, what, error: calls.append(args) or ""))
    devices = {"scsi-a": "/dev/sdx", "scsi-b": "/dev/sdy"}
    monkeypatch.setattr("smapi.drivers.iscsi.kernel.find_by_scsi_id", lambda scsi_id: devices.get(scsi_id))
    return calls


def _logouts(calls: List[List[str]]) -> int:
    return sum(1 for c in calls if "--logout" in c)


def test_kernel_sessions_shared_by_two_srs_end_with_the_last(kernel: List[List[str]]) -> None:
    target = parse_target({"target": "10.0.0.5", "targetIQN": IQN, "LUNid": "1"})
    run = os.path.join(os.environ["SMAPI_RUN_DIR"], "iscsi")
    ini = KernelInitiator()
    sr_a, sr_b = os.path.join(run, "sr-a"), os.path.join(run, "sr-b")
    # device() finds an existing session by the scsi id in its state: SR a is new, SR b's LUN shows once logged in
    assert ini.login(target, LunInfo(1, scsi_id="scsi-a"), sr_a) == "/dev/sdx"
    assert ini.login(target, LunInfo(2, scsi_id="scsi-b"), sr_b) == "/dev/sdy"
    assert Node("10.0.0.5:3260", IQN).holders() == ["sr-a", "sr-b"]

    ini.logout(sr_a)
    assert _logouts(kernel) == 0  # SR b still uses the session
    assert not os.path.exists(sr_a)
    ini.logout(sr_b)
    assert _logouts(kernel) == 1
    assert Node("10.0.0.5:3260", IQN).holders() == []


def test_a_failed_kernel_logout_keeps_the_count(kernel: List[List[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from smapi.interface.errors import Backend_error

    sdir = os.path.join(os.environ["SMAPI_RUN_DIR"], "iscsi", "sr-c")
    write_state(sdir, {"initiator": "kernel", "target": "10.0.0.5:3260", "iqn": IQN, "scsi_id": "scsi-a"})
    with Node("10.0.0.5:3260", IQN).locked() as node:
        node.add("sr-c")

    def refuse(args: List[str], what: str, error: str) -> str:
        raise Backend_error.classic(error, "iscsiadm: session busy")

    monkeypatch.setattr(KernelInitiator, "_adm", staticmethod(refuse))
    start = time.monotonic()
    with pytest.raises(Backend_error):
        KernelInitiator().logout(sdir)
    assert time.monotonic() - start < 5
    assert Node("10.0.0.5:3260", IQN).holders() == ["sr-c"]  # a retried detach will log it out
