"""Logging in and out: idempotent attach, a detach that releases everything, crashes cleaned at the next attach."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client

import pytest

from smapi.drivers.iscsi.initiator import read_state
from smapi.drivers.iscsi.kernel import KernelInitiator
from smapi.drivers.iscsi.userspace import loops_on, mounted, running
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error
from tests.iscsi.conftest import GiB, IscsiClient, MiB, Targets
from tests.iscsi.factory import leftovers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sr_lifecycle_with_chap(targets: Targets) -> None:
    t = targets.add([(1, GiB)], chap=("lifeuser", "LifeSecret1234"))
    sr = IscsiClient(targets.config(t, LUNid="1", chapuser="lifeuser", chappassword="LifeSecret1234"))
    sr.create()
    sr.attach()
    state = read_state(sr.session_dir())
    assert state["initiator"] == "userspace" and os.path.exists(state["device"])
    # no secret stays on this host: not in the attach record, not in the session directory
    for dirpath, _, files in os.walk(os.environ["SMAPI_RUN_DIR"]):
        for f in files:
            path = os.path.join(dirpath, f)
            if not mounted(path):
                with open(path, "rb") as fh:
                    assert b"LifeSecret1234" not in fh.read(), path
    vdi = sr.vdi(16 * MiB)
    data = os.urandom(3 * MiB)
    sr.write(vdi, 5 * MiB, data)
    sr.detach()
    assert not leftovers(t.iqn, os.environ["SMAPI_RUN_DIR"])
    sr.attach()
    assert sr.read(vdi, 5 * MiB, len(data)) == data
    sr.detach()


def test_attach_is_idempotent_and_detach_releases_everything(targets: Targets) -> None:
    t = targets.add([(1, GiB)])
    sr = IscsiClient(targets.config(t, LUNid="1"))
    sr.create()
    sr.attach()
    first = read_state(sr.session_dir())
    sr.attach()
    assert read_state(sr.session_dir()) == first  # the same session: same daemon, same loop device
    assert running(first["pid"]) and loops_on(os.path.join(sr.session_dir(), "lun")) == [first["device"]]
    sr.detach()
    assert not running(first["pid"])
    assert not os.path.exists(sr.session_dir())
    assert not leftovers(t.iqn, os.environ["SMAPI_RUN_DIR"])
    sr.detach()  # idempotent


def test_a_killed_initiator_is_a_typed_error_and_the_next_attach_recovers(targets: Targets) -> None:
    t = targets.add([(1, GiB)])
    sr = IscsiClient(targets.config(t, LUNid="1"))
    sr.create()
    sr.attach()
    vdi = sr.vdi(8 * MiB)
    data = os.urandom(2 * MiB)
    sr.write(vdi, 0, data)
    old = read_state(sr.session_dir())
    os.kill(old["pid"], signal.SIGKILL)  # the daemon dies: its FUSE mount is left answering ENOTCONN
    deadline = time.monotonic() + 5
    while running(old["pid"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    with pytest.raises(Backend_error) as err:
        sr.v("SR.scan")
    assert err.value.classic_code == CLASSIC_CODES["ISCSIDevice"][0] and "SR.attach" in err.value.message()
    assert time.monotonic() - start < 5
    sr.attach()  # replaces the broken session: the stale loop and mount go, a new daemon starts
    new = read_state(sr.session_dir())
    assert new["pid"] != old["pid"]
    assert loops_on(os.path.join(sr.session_dir(), "lun")) == [new["device"]]
    assert hashlib.sha256(sr.read(vdi, 0, len(data))).digest() == hashlib.sha256(data).digest()
    sr.detach()
    assert not leftovers(t.iqn, os.environ["SMAPI_RUN_DIR"])


def test_detach_after_the_session_died_still_releases_everything(targets: Targets) -> None:
    t = targets.add([(1, GiB)])
    sr = IscsiClient(targets.config(t, LUNid="1"))
    sr.create()
    sr.attach()
    pid = read_state(sr.session_dir())["pid"]
    os.kill(pid, signal.SIGKILL)
    sr.detach()  # whether or not the daemon is gone yet: the first check or the verb's own one finds out
    assert not leftovers(t.iqn, os.environ["SMAPI_RUN_DIR"])
    assert sr.call("SR.ls") == []


@pytest.mark.skipif(KernelInitiator.available() is not None,
                    reason=f"kernel initiator unusable here: {KernelInitiator.available()}")
def test_kernel_initiator_attaches_a_lun(targets: Targets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMAPI_ISCSI_CLIENT", "kernel")
    t = targets.add([(1, GiB)])
    sr = IscsiClient(targets.config(t, LUNid="1"))
    sr.create()
    sr.attach()
    vdi = sr.vdi(4 * MiB)
    sr.write(vdi, 0, b"kernel" * 1000)
    assert sr.read(vdi, 0, 6000) == b"kernel" * 1000
    sr.detach()


def _classic(command: str, sr: str, device_config: dict, *args: str) -> object:
    struct = {"host_ref": "OpaqueRef:h", "session_ref": "OpaqueRef:s", "command": command, "args": list(args),
              "sr_uuid": sr, "device_config": device_config}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "ISCSISR"),
                          xmlrpc.client.dumps((struct,), command)], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return xmlrpc.client.loads(out)[0][0]


def test_classic_executables_attach_in_one_process_and_detach_in_another(targets: Targets) -> None:
    """The initiator outlives the verb that logged in; a later process finds it by its record and releases it."""
    t = targets.add([(1, GiB)])
    dc = targets.config(t, LUNid="1")
    sr = IscsiClient(dc)
    _classic("sr_create", sr.sr, dc, "0")
    _classic("sr_attach", sr.sr, dc)
    state = read_state(sr.session_dir())
    assert running(state["pid"]) and os.path.exists(state["device"])
    vdi = sr.vdi(4 * MiB)  # this process uses the session the executable made
    sr.write(vdi, 0, b"across processes")
    _classic("sr_detach", sr.sr, dc)
    deadline = time.monotonic() + 5
    while running(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(state["pid"])
    assert not leftovers(t.iqn, os.environ["SMAPI_RUN_DIR"])


def test_attach_releases_temporary_sessions_of_killed_verbs(targets: Targets) -> None:
    """A probe or create killed while its temporary session was up leaves a daemon; the next attach stops it."""
    from smapi.drivers.iscsi import discovery
    from smapi.drivers.iscsi.config import parse_target
    from smapi.drivers.iscsi.initiator import write_state
    from smapi.drivers.iscsi.userspace import UserspaceInitiator

    t = targets.add([(1, GiB)])
    dc = targets.config(t, LUNid="1")
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = os.path.join(os.environ["SMAPI_RUN_DIR"], "iscsi", "tmp-killedverb0")
    target = parse_target(dc)
    UserspaceInitiator().login(target, discovery.resolve(target), orphan)
    write_state(orphan, {**read_state(orphan), "owner": dead.pid})
    pid = read_state(orphan)["pid"]
    sr = IscsiClient(dc)
    sr.create()
    assert not os.path.exists(orphan) and not running(pid)
    sr.attach()
    sr.detach()
