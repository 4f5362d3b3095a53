"""Today's SMAPIv3 verbs on smapi's own adapter, through an installed plugin root as xapi-storage-script runs it:
Volume.compose, Volume.revert, Datapath.import_activate, the Data interface (a real copy to a remote NBD disk,
tracked across processes), and features that say exactly what works."""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List

import pytest
from click.testing import CliRunner

from smapi import datapath as dpio
from smapi.cli.main import cli
from smapi.core import data_ops
from smapi.core.v3_adapter import DatapathOnStorage, SROnStorage, VolumeOnStorage
from smapi.core.v3_data import DataOnStorage
from smapi.core.v3_features import FEATURE_VERBS, implemented, truthful
from smapi.interface.skeletons.v3 import Volume_skeleton
from tests.sr.drivers import file_sr_factory
from tests.toolstack.storage_script import StorageScript, StorageScriptError, implementation

TOOLS = ("nbdkit", "qemu-io")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason=f"needs {', '.join(TOOLS)} (ci/apt-packages.txt)")
MiB = 1024 * 1024
PLUGIN = "smapi-file"


@pytest.fixture
def host(tmp_path, monkeypatch) -> Iterator[Dict[str, Any]]:
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "xss"
    result = CliRunner().invoke(cli, ["plugin-install", "--driver", "file", "--root", str(root), "--name", PLUGIN])
    assert result.exit_code == 0, result.output
    xss = StorageScript(str(root))
    stored = xss.volume(PLUGIN, "SR.create", dbg="t", uuid=str(uuid.uuid4()), configuration=dict(sut.device_config),
                        name="sr", description="")
    sr = xss.volume(PLUGIN, "SR.attach", dbg="t", configuration=stored)
    try:
        yield {"xss": xss, "sr": sr, "tmp": tmp_path, "run": sut.env["SMAPI_RUN_DIR"]}
    finally:
        for op_id in data_ops.ids():  # a failed test may leave a worker behind
            record = data_ops.read(op_id)
            if data_ops.worker_alive(record):
                os.kill(record["pid"], signal.SIGKILL)
        dpio.teardown_all(sut.env["SMAPI_RUN_DIR"])
        sut.cleanup()


def qemu_io(uri: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", "-f", "raw", "-c", command, uri], capture_output=True, text=True, timeout=60)


def new_volume(host: Dict[str, Any], size: int = 4 * MiB) -> Dict[str, Any]:
    return host["xss"].volume(PLUGIN, "Volume.create", dbg="t", sr=host["sr"], name="v", description="", size=size,
                              sharable=False)


def uri_of(host: Dict[str, Any], key: str) -> str:
    return host["xss"].choose_datapath(host["xss"].volume(PLUGIN, "Volume.stat", dbg="t", sr=host["sr"],
                                                          key=key)["uri"])[1]


class Active:
    """A volume opened, attached and activated for dom0, as xapi sets it up; `nbd` is its export."""

    def __init__(self, host: Dict[str, Any], key: str) -> None:
        self.xss, self.uri = host["xss"], uri_of(host, key)

    def __enter__(self) -> Active:
        self.xss.datapath("smapi", "Datapath.open", dbg="t", uri=self.uri, persistent=True)
        backend = self.xss.datapath("smapi", "Datapath.attach", dbg="t", uri=self.uri, domain="0")
        self.nbd = implementation(backend, "Nbd")["uri"]
        self.xss.datapath("smapi", "Datapath.activate", dbg="t", uri=self.uri, domain="0")
        return self

    def __exit__(self, *exc: Any) -> None:
        for verb in ("Datapath.deactivate", "Datapath.detach"):
            self.xss.datapath("smapi", verb, dbg="t", uri=self.uri, domain="0")
        self.xss.datapath("smapi", "Datapath.close", dbg="t", uri=self.uri)

    def io(self, command: str) -> None:
        done = qemu_io(self.nbd, command)
        assert done.returncode == 0 and "Pattern verification failed" not in done.stdout, (command, done.stdout,
                                                                                         done.stderr)


def test_compose_layers_the_childs_updates_onto_the_parent(host) -> None:
    parent, child = new_volume(host), new_volume(host)
    with Active(host, parent["key"]) as disk:
        disk.io("write -P 0x11 0 2M")
    with Active(host, child["key"]) as disk:
        disk.io("write -P 0x22 1M 1M")
    assert host["xss"].volume(PLUGIN, "Volume.compose", dbg="t", sr=host["sr"], key=child["key"],
                              key2=parent["key"]) is None
    with Active(host, child["key"]) as disk:
        disk.io("read -P 0x11 0 1M")
        disk.io("read -P 0x22 1M 1M")
        disk.io("read -P 0 2M 2M")


def test_revert_gives_the_volume_its_snapshots_contents_and_keeps_its_identity(host) -> None:
    xss, sr = host["xss"], host["sr"]
    vol = new_volume(host)
    with Active(host, vol["key"]) as disk:
        disk.io("write -P 0xaa 0 1M")
    snap = xss.volume(PLUGIN, "Volume.snapshot", dbg="t", sr=sr, key=vol["key"])
    with Active(host, vol["key"]) as disk:
        disk.io("write -P 0xbb 0 2M")
    xss.volume(PLUGIN, "Volume.resize", dbg="t", sr=sr, key=vol["key"], new_size=8 * MiB)
    with Active(host, vol["key"]) as disk:
        disk.io("write -P 0xcc 6M 1M")
    assert xss.volume(PLUGIN, "Volume.revert", dbg="t", sr=sr, snapshot=snap["key"], key=vol["key"]) is None
    after = xss.volume(PLUGIN, "Volume.stat", dbg="t", sr=sr, key=vol["key"])
    assert (after["key"], after["uuid"]) == (vol["key"], vol["uuid"]) and after["read_write"]
    with Active(host, vol["key"]) as disk:
        disk.io("read -P 0xaa 0 1M")
        disk.io("read -P 0 1M 7M")  # written after the snapshot, or past its end: gone
    with pytest.raises(StorageScriptError) as missing:
        xss.volume(PLUGIN, "Volume.revert", dbg="t", sr=sr, snapshot="no-such-snapshot", key=vol["key"])
    assert missing.value.params[0] == "Volume_does_not_exist"


def _pass_fd(import_socket: str, listener: socket.socket) -> threading.Thread:
    """Accept one NBD client on `listener` and hand its connection to `import_socket`, as xapi does."""
    def hand_over() -> None:
        conn, _ = listener.accept()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(import_socket)
            s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [conn.fileno()]))])
        conn.close()
    thread = threading.Thread(target=hand_over, daemon=True)
    thread.start()
    return thread


def test_import_activate_serves_nbd_on_a_handed_over_descriptor(host) -> None:
    vol = new_volume(host)
    with Active(host, vol["key"]) as disk:
        sock = host["xss"].datapath("smapi", "Datapath.import_activate", dbg="t", uri=disk.uri, domain="0")
        assert sock == host["xss"].datapath("smapi", "Datapath.import_activate", dbg="t", uri=disk.uri,
                                            domain="0")  # idempotent
        front = str(host["tmp"] / "front.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(front)
            listener.listen(1)
            thread = _pass_fd(sock, listener)
            export = disk.nbd.split(":exportname=", 1)[1]
            assert qemu_io(f"nbd+unix:///{export}?socket={front}", "write -P 0x77 0 1M").returncode == 0
            thread.join(10)
        disk.io("read -P 0x77 0 1M")  # the write reached the volume through the relay
    assert not os.path.exists(sock)  # deactivate stopped the relay


@pytest.fixture
def remote(tmp_path) -> Iterator[str]:
    """A remote disk: nbdkit's memory plugin (8 MiB) on a Unix socket, read back with qemu-io."""
    sock = str(tmp_path / "remote.sock")
    proc = subprocess.Popen(["nbdkit", "-f", "-U", sock, "memory", "8M"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline and proc.poll() is None, "nbdkit did not start"
            time.sleep(0.02)
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def wait_complete(xss: StorageScript, op: List[str]) -> Dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status = xss.datapath("smapi", "Data.stat", dbg="t", operation=op)
        if status["complete"] or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_data_copy_copies_the_blocklist_to_a_remote_nbd_disk(host, remote) -> None:
    xss = host["xss"]
    vol = new_volume(host)
    with Active(host, vol["key"]) as disk:
        disk.io("write -P 0x31 0 1M")
        disk.io("write -P 0x32 1M 1M")
        disk.io("write -P 0x33 2M 1M")
        op = xss.datapath("smapi", "Data.copy", dbg="t", uri=disk.uri, domain="0",
                          remote=f"nbd:unix:{remote}:exportname=", blocklist={"blocksize": MiB,
                                                                             "ranges": [[0, 1], [2, 1]]})
        assert op[0] == "CopyV1" and op in xss.datapath("smapi", "Data.ls", dbg="t")
        status = wait_complete(xss, op)
        assert status == {"failed": False, "complete": True, "progress": 1.0}
    dest = f"nbd+unix:///?socket={remote}"
    for command in ("read -P 0x31 0 1M", "read -P 0 1M 1M", "read -P 0x33 2M 1M", "read -P 0 3M 5M"):
        out = qemu_io(dest, command)
        assert out.returncode == 0 and "verification failed" not in out.stdout, (command, out.stdout)
    assert xss.datapath("smapi", "Data.destroy", dbg="t", operation=op) is None
    assert xss.datapath("smapi", "Data.ls", dbg="t") == []
    # the copy's own datapath was released: the volume can be destroyed
    assert xss.volume(PLUGIN, "Volume.destroy", dbg="t", sr=host["sr"], key=vol["key"]) is None


def test_a_copy_whose_worker_dies_is_failed_and_cancel_stops_one(host, tmp_path) -> None:
    xss = host["xss"]
    vol = new_volume(host, 8 * MiB)
    slow = str(tmp_path / "slow.sock")
    # every write to this remote takes 0.2 s: the copy is still running when we act on it
    proc = subprocess.Popen(["nbdkit", "-f", "-U", slow, "--filter=delay", "memory", "8M", "wdelay=200ms"],
                            stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(slow):
            assert proc.poll() is None
            time.sleep(0.02)
        uri = uri_of(host, vol["key"])
        blocks = {"blocksize": MiB, "ranges": [[0, 8]]}
        killed = xss.datapath("smapi", "Data.copy", dbg="t", uri=uri, domain="0",
                              remote=f"nbd+unix:///?socket={slow}", blocklist=blocks)
        pid = data_ops.read(killed[1])["pid"]
        os.kill(pid, signal.SIGKILL)
        while data_ops.worker_alive(data_ops.read(killed[1])):
            time.sleep(0.02)
        assert xss.datapath("smapi", "Data.stat", dbg="t", operation=killed) == {
            "failed": True, "complete": True, "progress": pytest.approx(
                xss.datapath("smapi", "Data.stat", dbg="t", operation=killed)["progress"])}
        assert "died" in data_ops.read(killed[1])["error"]

        cancelled = xss.datapath("smapi", "Data.copy", dbg="t", uri=uri, domain="0",
                                 remote=f"nbd+unix:///?socket={slow}", blocklist=blocks)
        assert xss.datapath("smapi", "Data.cancel", dbg="t", operation=cancelled) is None
        status = wait_complete(xss, cancelled)
        assert status["complete"] and status["failed"] and status["progress"] < 1.0
        for op in (killed, cancelled):
            xss.datapath("smapi", "Data.destroy", dbg="t", operation=op)
        assert xss.volume(PLUGIN, "Volume.destroy", dbg="t", sr=host["sr"], key=vol["key"]) is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_data_errors_are_typed(host) -> None:
    xss = host["xss"]
    vol = new_volume(host)
    with pytest.raises(StorageScriptError) as bad_remote:
        xss.datapath("smapi", "Data.copy", dbg="t", uri=uri_of(host, vol["key"]), domain="0",
                     remote="http://example.com/disk", blocklist={"blocksize": MiB, "ranges": [[0, 1]]})
    assert bad_remote.value.params[0] == "Invalid_argument" and "nbd" in json.dumps(bad_remote.value.params)
    with pytest.raises(StorageScriptError) as unknown:
        xss.datapath("smapi", "Data.stat", dbg="t", operation=["CopyV1", "0123456789abcdef"])
    assert unknown.value.params[0] == "Invalid_argument"
    with pytest.raises(StorageScriptError) as mirror:
        xss.datapath("smapi", "Data.mirror", dbg="t", uri=uri_of(host, vol["key"]), domain="0",
                     remote="nbd://example.com/x")
    assert mirror.value.params[0] == "Unimplemented" and "cannot duplicate" in json.dumps(mirror.value.params)


def test_features_name_only_verbs_that_are_implemented(host) -> None:
    xss = host["xss"]
    volume_features = xss.volume(PLUGIN, "Plugin.Query", dbg="t")["features"]
    assert "VDI_COMPOSE" in volume_features  # implemented now, and exercised above
    served = {"SR": SROnStorage, "Volume": VolumeOnStorage, "Datapath": DatapathOnStorage, "Data": DataOnStorage}
    for feature in volume_features + xss.datapaths["smapi"]["features"]:
        if feature in FEATURE_VERBS:
            iface, verb = FEATURE_VERBS[feature]
            assert implemented(served[iface], verb), feature
    assert "VDI_MIRROR_IN" in xss.datapaths["smapi"]["features"]
    assert "VDI_MIRROR" not in xss.datapaths["smapi"]["features"] + volume_features
    assert not implemented(DataOnStorage, "mirror")  # it only says why it is not implemented


def test_truthful_drops_a_feature_whose_verb_is_the_skeletons() -> None:
    class NoCompose(Volume_skeleton):
        def clone(self, dbg: str, sr: str, key: str) -> Dict[str, Any]:
            return {}

    lookup = {"Volume": NoCompose}.get
    assert truthful(["SR_ATTACH", "VDI_CLONE", "VDI_COMPOSE", "VDI_MIRROR"], lookup) == ["SR_ATTACH", "VDI_CLONE"]
    assert truthful(["VDI_COMPOSE"], {"Volume": VolumeOnStorage}.get) == ["VDI_COMPOSE"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_copy_reaches_a_tcp_nbd_uri(host) -> None:
    xss = host["xss"]
    port = _free_port()
    proc = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "memory", "4M"],
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "nbdkit did not listen"
            time.sleep(0.05)
        vol = new_volume(host)
        with Active(host, vol["key"]) as disk:
            disk.io("write -P 0x5e 0 4M")
        op = xss.datapath("smapi", "Data.copy", dbg="t", uri=uri_of(host, vol["key"]), domain="0",
                          remote=f"nbd://127.0.0.1:{port}/", blocklist={"blocksize": 64 * 1024, "ranges": [[0, 64]]})
        assert wait_complete(xss, op) == {"failed": False, "complete": True, "progress": 1.0}
        out = qemu_io(f"nbd://127.0.0.1:{port}/", "read -P 0x5e 0 4M")
        assert out.returncode == 0 and "verification failed" not in out.stdout, out.stdout
        xss.datapath("smapi", "Data.destroy", dbg="t", operation=op)
    finally:
        proc.terminate()
        proc.wait(10)
