"""The parts below the driver: the ganesha fixture, the userspace and kernel mounts, attach errors, discovery."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from smapi.drivers.nfs.config import from_device_config
from smapi.drivers.nfs.mount import FuseMounter, KernelMounter, is_mounted, mount_type
from smapi.interface.errors import Backend_error
from tests.nfs.conftest import Host, host_env
from tests.nfs.factory import device_config
from tests.nfs.ganesha import GaneshaServer


def _dc(server: GaneshaServer, path: str = "") -> Dict[str, str]:
    return device_config(server, path or server.serverpath, "3" if server.version == "3" else "4.1")


def _fresh_fuse_mount(server: GaneshaServer, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Tuple[FuseMounter, str, Dict[str, str], str]:
    """A userspace mount of a new, empty directory of the export at tmp_path/mnt (the caller unmounts it):
    (mounter, mountpoint, device_config, that directory on the server's side)."""
    for k, v in server.client_env().items():
        monkeypatch.setenv(k, v)
    sub = f"plumb-{os.getpid()}-{time.monotonic_ns()}"
    os.makedirs(os.path.join(server.export_dir, sub))
    dc = _dc(server, f"{server.serverpath}/{sub}")
    mnt = str(tmp_path / "mnt")
    m = FuseMounter()
    m.mount(from_device_config(dc), dc, mnt)
    return m, mnt, dc, os.path.join(server.export_dir, sub)


def test_private_server_starts_answers_and_leaves_nothing_behind() -> None:
    server = GaneshaServer("3").start()
    try:
        rpcb_pid = server._rpcbind.pid  # type: ignore[union-attr]
        gan_pid = server._ganesha.pid  # type: ignore[union-attr]
        out = subprocess.run(server.in_netns(["rpcinfo", "-p", "127.0.0.1"]), capture_output=True, text=True).stdout
        assert "mountd" in out and "nfs" in out
        shown = subprocess.run(server.in_netns(["showmount", "-e", "127.0.0.1"]), capture_output=True, text=True)
        assert server.export_dir in shown.stdout
        # the namespace is private: the host's own network has no portmapper
        assert subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True).returncode != 0
        netns = os.readlink(server.netns)  # type: ignore[arg-type]
        assert netns != os.readlink("/proc/self/ns/net")
    finally:
        server.destroy()
    for pid in (rpcb_pid, gan_pid):
        assert not os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(server.workdir)


def test_fuse_mount_round_trip_and_clean_unmount(server: GaneshaServer, tmp_path: Path, no_leftovers: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    m, mnt, dc, exported = _fresh_fuse_mount(server, tmp_path, monkeypatch)
    try:
        assert mount_type(mnt) == "fuse.smapi-nfs"
        data = os.urandom(5 * (1 << 20) + 123)
        with open(os.path.join(mnt, "f.bin"), "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        # what the server stored, read behind the client's back
        with open(os.path.join(exported, "f.bin"), "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        os.replace(os.path.join(mnt, "f.bin"), os.path.join(mnt, "g.bin"))
        assert os.listdir(mnt) == ["g.bin"]
        os.mkdir(os.path.join(mnt, "d"))
        with pytest.raises(FileExistsError):
            os.mkdir(os.path.join(mnt, "d"))  # atomic on the server: what the lease locks stand on
        st = os.statvfs(mnt)
        assert st.f_blocks > 0 and st.f_bavail > 0
        m.mount(from_device_config(dc), dc, mnt)  # mounting again is a no-op
    finally:
        m.unmount(mnt)
    assert not is_mounted(mnt)


def test_a_file_replaced_under_a_reader_does_not_fail_other_users_of_the_mount(
        server: GaneshaServer, tmp_path: Path, no_leftovers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a lease heartbeat does to its readers: `owner` is replaced by rename while others read it, so their
    reads meet a stale file handle. Only that reader may notice; a writer of another file on the same mount (one
    NFS client) must not get an I/O error, and nothing may make the mount reconnect."""
    m, mnt, _, _ = _fresh_fuse_mount(server, tmp_path, monkeypatch)
    owner = os.path.join(mnt, "owner")
    stop = threading.Event()
    problems: List[str] = []
    reads = {"ok": 0, "stale": 0, "replaced": 0, "written": 0}

    def replacer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            tmp = f"{owner}.{n}.tmp"
            try:
                with open(tmp, "w") as f:
                    f.write(json.dumps({"n": n, "pad": "x" * 200}))
                os.replace(tmp, owner)
                reads["replaced"] += 1
            except OSError as e:
                problems.append(f"replacer: {e!r}")

    def reader() -> None:
        while not stop.is_set():
            try:
                with open(owner) as f:
                    time.sleep(0.002)  # let the replacer remove the file this handle names
                    json.loads(f.read())
                reads["ok"] += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != errno.ESTALE:  # the one error a reader of a replaced file may see
                    problems.append(f"reader: {e!r}")
                reads["stale"] += 1

    def writer() -> None:
        data = os.urandom(64 << 10)
        n = 0
        while not stop.is_set():
            n += 1
            path = os.path.join(mnt, f"w{n}.bin")
            try:
                with open(path, "wb") as f:
                    f.write(data)
                with open(path, "rb") as f:
                    if f.read() != data:
                        problems.append(f"writer: {path} reads back different data")
                os.unlink(path)
                reads["written"] += 1
            except OSError as e:
                problems.append(f"writer: {e!r}")

    with open(owner, "w") as f:
        f.write("{}")
    threads = [threading.Thread(target=t) for t in (replacer, reader, reader, writer)]
    try:
        for t in threads:
            t.start()
        time.sleep(4)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        log = Path(mnt + ".log").read_text(errors="replace")
        m.unmount(mnt)
    assert problems == []
    assert reads["replaced"] > 20 and reads["ok"] > 20 and reads["written"] > 5, reads
    assert "reconnecting" not in log, log[-2000:]


def test_kernel_client_sits_behind_the_same_interface(server: GaneshaServer, tmp_path: Path) -> None:
    why = KernelMounter.available()
    if why:
        pytest.skip(f"kernel NFS client unusable on this host: {why}")
    dc = _dc(server)  # pragma: no cover - only on hosts with an nfs kernel module
    m = KernelMounter()
    m.mount(from_device_config(dc), dc, str(tmp_path / "k"))
    try:
        assert mount_type(str(tmp_path / "k")) in ("nfs", "nfs4")
    finally:
        m.unmount(str(tmp_path / "k"))


@pytest.mark.parametrize("change, code", [
    ({"serverpath": "/no/such/export"}, "NFSMount"),
    ({"port": "1"}, "NFSTarget"),
    ({"nfsversion": "3"}, "NFSVersion"),
])
def test_attach_errors_are_clear_and_quick(change: Dict[str, str], code: str, tmp_path: Path,
                                           no_leftovers: str) -> None:
    from smapi.interface.classic_codes import CLASSIC_CODES

    server = _v4()
    host = Host(tmp_path / "run", host_env(server))
    dc = {**_dc(server), **change}
    if code == "NFSVersion":
        dc["port"] = str(server.port)  # a v4-only server asked for v3
    started = time.monotonic()
    with pytest.raises(Backend_error) as err:
        host.call("SR.attach", sr="3b0e8f52-4a4e-4f43-9a3f-5e3c1f9d8a11", device_config=dc)
    assert time.monotonic() - started < 20
    assert err.value.code == f"SR_BACKEND_FAILURE_{CLASSIC_CODES[code][0]}", err.value.message()
    assert host.call("SR.ls") == []


def _v4() -> GaneshaServer:
    from tests.nfs.factory import shared_server

    return shared_server("4")


def test_probe_without_serverpath_lists_the_exports(server: GaneshaServer, tmp_path: Path) -> None:
    host = Host(tmp_path / "run", host_env(server))
    dc = {k: v for k, v in _dc(server).items() if k != "serverpath"}
    tag, xml = host.call("SR.probe", device_config=dc, sm_config={})
    assert tag == "Raw" and xml.count("<Export>") == 1
    assert f"<Path>{server.serverpath}</Path>" in xml
    assert "<Target>127.0.0.1</Target>" in xml
