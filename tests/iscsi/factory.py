"""iSCSI SRs under test: LVM on a LUN of a real tgtd on 127.0.0.1, reached through the userspace initiator.

One tgtd is started on first use and shared by the test session (a private port and control socket, so parallel
test processes never collide); every factory call gets its own target with one sparse 4 GiB LUN in the test's
directory. `cleanup()` releases every initiator session that reached that target, whichever run directory (a
"fresh host") made it: loop devices, qemu-storage-daemon processes and FUSE mounts, then removes the target.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import uuid
from typing import TYPE_CHECKING, Dict, List, Optional

from tests.iscsi.tgt import TgtServer
from tests.nfs.factory import session_sanlock_env

if TYPE_CHECKING:
    from tests.sr.drivers import SRUnderTest

GiB = 1 << 30
LUN_SIZE = 4 * GiB
_server: Optional[TgtServer] = None
_lock = threading.Lock()


def iscsi_unavailable() -> Optional[str]:
    """Why iSCSI SRs cannot be tested here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (tgtd, loop devices, FUSE mounts)"
    for tool in ("tgtd", "tgtadm", "qemu-storage-daemon", "fusermount3", "losetup", "lvm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (ci/apt-packages.txt)"
    if not os.path.exists("/dev/fuse") or not os.path.exists("/dev/loop-control"):
        return "no FUSE or loop device support"
    from smapi.drivers.iscsi.libiscsi import IscsiFailure, library

    try:
        library()
    except IscsiFailure as e:
        return str(e)
    return None


def shared_server() -> TgtServer:
    global _server
    with _lock:
        if _server is None or not _server.running:
            if _server is not None:
                _server.stop()
            else:
                reap_orphans()
            _server = TgtServer(tempfile.mkdtemp(prefix="smapi-tgt-")).start()
        return _server


def stop_shared_server() -> None:
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            shutil.rmtree(_server.workdir, ignore_errors=True)
            _server = None


atexit.register(stop_shared_server)


def reap_orphans() -> None:
    """Release initiator sessions a killed test run left (their tgtd died with it: nobody listens on the portal)."""
    from tests.iscsi.tgt import IQN_PREFIX

    for pid in _initiator_processes(IQN_PREFIX):
        if _parent(pid) != 1:
            continue  # a running test's own child (its target may be down on purpose: the outage test)
        args = _args(pid)
        portal = next((p.split("=", 1)[1] for a in args for p in a.split(",") if p.startswith("portal=")), "")
        iqn = next((p.split("=", 1)[1] for a in args for p in a.split(",") if p.startswith("target=")), "")
        host, _, port = portal.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                continue  # a live target: some running test's session
        except (OSError, ValueError):
            pass
        release_sessions(iqn)


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _args(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _initiator_processes(iqn: str) -> List[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"qemu-storage-daemon") and any(f"target={iqn}".encode() in a for a in args):
            pids.append(int(name))
    return pids


def release_sessions(iqn: str, below: str = "") -> None:
    """Log out every userspace session to `iqn` on this machine, and the dead ones (stale mount, loop device)
    recorded in session directories below `below` (best effort, never raises)."""
    from smapi.drivers.iscsi.initiator import STATE_FILE, read_state
    from smapi.drivers.iscsi.userspace import UserspaceInitiator, is_ours

    if below:
        for dirpath, _, files in os.walk(below):
            if STATE_FILE in files and read_state(dirpath).get("iqn") == iqn:
                with contextlib.suppress(Exception):
                    UserspaceInitiator().logout(dirpath)

    for pid in _initiator_processes(iqn + ","):
        args = _args(pid)
        mnt = next((p.split("=", 1)[1] for a in args for p in a.split(",") if p.startswith("mountpoint=")), "")
        if mnt and is_ours(pid, mnt):
            with contextlib.suppress(Exception):
                UserspaceInitiator().logout(os.path.dirname(mnt))


def iscsi_sr_factory(tmp_path: str | os.PathLike[str], *, chap: bool = False) -> SRUnderTest:
    from tests.sr.drivers import SRUnderTest

    tgt = shared_server()
    root = os.fspath(tmp_path)
    run_dir = os.path.join(root, "run")
    os.makedirs(run_dir, exist_ok=True)
    name = f"sr-{uuid.uuid4().hex[:10]}"
    creds = (f"u{name[3:9]}", f"Secret-{uuid.uuid4().hex[:12]}") if chap else None
    target = tgt.add_target(name, [(1, LUN_SIZE)], chap=creds)
    device_config: Dict[str, str] = {"target": "127.0.0.1", "port": str(tgt.port), "targetIQN": target.iqn,
                                     "LUNid": "1"}
    if creds:
        device_config.update(chapuser=creds[0], chappassword=creds[1])
    env = {
        "SMAPI_RUN_DIR": run_dir,
        "SMAPI_GC": "sync",
        "SMAPI_ISCSI_CLIENT": "userspace",
        # no SMAPI_LVM_SYSTEM_DIR / SMAPI_LVM_LOCK_DIR: they follow the run directory, so a "fresh host" (a fresh
        # SMAPI_RUN_DIR) has its own lvm.conf and lock files, as tests/lvm/factory.py's hosts do
        # every iSCSI SR is a pool SR: its leases need this test process's sanlock daemon (one host)
        **session_sanlock_env(),
    }
    sut = SRUnderTest(driver_spec="smapi.drivers.iscsi:IscsiDriver", device_config=device_config, env=env,
                      name="iscsi-chap" if chap else "iscsi")

    def cleanup() -> None:
        # Sessions of "fresh hosts" live in other run directories of the same test: search the test's directory.
        release_sessions(target.iqn, os.path.dirname(root.rstrip("/")))
        tgt.remove_target(target)

    sut._cleanups.append(cleanup)
    return sut


def leftovers(iqn: str, root: str) -> List[str]:
    """What a test left behind: initiator processes for `iqn`, loop devices and mounts on files below `root`."""
    from smapi.drivers.iscsi.userspace import loops_on, mounted

    out = [f"qemu-storage-daemon pid {p}" for p in _initiator_processes(iqn + ",")]
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            out += [f"loop {d} on {path}" for d in loops_on(path)]
            if mounted(path):
                out.append(f"mount on {path}")
    return out


ISCSI_FACTORIES = {"iscsi": iscsi_sr_factory}
