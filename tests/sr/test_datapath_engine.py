"""The engine's VDI.attach/activate/deactivate/detach serve real disks: real NBD clients write through them, the
SR then holds exactly those bytes; servers follow the automaton, chain-changing verbs pause them, SR.detach and
host restarts leave nothing behind. Every test ends with a leak check (finalizer: failing tests too)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from typing import Dict, Iterator, List

import pytest

from smapi import datapath as dpio
from smapi.datapath import procs
from smapi.datapath import runtime as dpruntime
from smapi.interface.errors import Backend_error, Illegal_transition
from smapi.rpc.plugin_dir import install_plugin
from tests.sr.drivers import file_sr_factory
from tests.sr.helpers import FileSR, MiB, sha

TOOLS = ("nbdkit", "qemu-io", "qemu-img", "nbdcopy", "nbdinfo")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason=f"needs {', '.join(TOOLS)} (ci/apt-packages.txt)")
LIBNBD_PY = "/usr/bin/python3"  # python3-libnbd exists for the system Python only


# ------------------------------------------------------------------------------------------------ fixtures
def _nbdkits(marker: str) -> List[int]:
    """Live nbdkit processes serving an image under `marker` (the test's directory)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = procs.cmdline(int(entry)) or []
            ours = args and os.path.basename(args[0]) == "nbdkit" and any(marker in a for a in args)
            if ours and procs.running(int(entry)):
                out.append(int(entry))
    return out


def _sockets(*dirs: str) -> List[str]:
    return [os.path.join(d, f) for top in dirs for d, _, fs in os.walk(top) for f in fs if f.endswith(".sock")]


@pytest.fixture
def env(tmp_path, monkeypatch) -> Iterator[Dict[str, str]]:
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMAPI_FAULT", raising=False)
    run = sut.env["SMAPI_RUN_DIR"]
    try:
        yield {"root": str(tmp_path), "run": run, "sr_path": sut.device_config["path"]}
    finally:
        # Leak check even when the test failed: kill what is left, then fail the test if anything was.
        leaked = _nbdkits(str(tmp_path))
        for pid in leaked:
            procs.terminate(pid, timeout=2)
        sockets = _sockets(run)
        dpio.teardown_all(run)  # also drops the short socket alias of this run dir
        alias = dpio.NbdServer(run).alias
        sut.cleanup()
        assert not leaked, f"nbdkit processes left running: {leaked}"
        assert not sockets, f"sockets left behind: {sockets}"
        assert not os.path.lexists(alias)


@pytest.fixture
def fsr(env) -> Iterator[FileSR]:
    sr = FileSR(env["sr_path"])
    sr.create_sr()
    sr.attach()
    yield sr
    sr.reload()
    sr.v("SR.detach")  # must tear down whatever a test left active


def _uri(info: dict) -> str:
    return info["xenstore_data"]["nbd-uri"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed ({res.returncode}): {res.stdout[-800:]!r} {res.stderr[-800:]!r}")
    return res


def qemu_io(uri: str, *commands: str, check: bool = True, readonly: bool = False) -> subprocess.CompletedProcess:
    args = ["qemu-io", "-f", "raw"] + (["-r"] if readonly else [])
    for c in commands:
        args += ["-c", c]
    return run(*args, uri, check=check)


def qemu_read_all(uri: str, scratch: str) -> bytes:
    out = os.path.join(scratch, "export.raw")
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out)
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


def server_pid(env: Dict[str, str], vdi: str) -> int:
    ex = dpio.server(vdi, run_dir=env["run"])
    return ex.pid if ex is not None and ex.running() else 0


def _apply(model: bytearray, offset: int, data: bytes) -> None:
    model[offset:offset + len(data)] = data


# ------------------------------------------------------------------------------------------------ tests
def test_write_through_qemu_io_and_nbdcopy_then_the_sr_holds_exactly_that(fsr: FileSR, env) -> None:
    size = 8 * MiB
    vdi = fsr.create(size)
    info = fsr.v("VDI.attach", dp="vm1", vdi=vdi, read_write=True)
    sock = info["params_nbd"].split(":")[2]
    assert info["params"] == info["params_nbd"] == f"nbd:unix:{sock}:exportname={vdi}"
    assert info["xenstore_data"]["vdi-type"] == "vhd" and info["xenstore_data"]["mode"] == "w"
    assert not os.path.exists(sock), "the server starts at activate, not at attach"
    fsr.v("VDI.activate", dp="vm1", vdi=vdi)
    assert os.path.exists(sock) and server_pid(env, vdi)

    # nbdcopy lays down a whole disk image (with holes), then qemu-io writes over parts of it.
    rnd = random.Random(8)
    model = bytearray(size)
    for off in (0, 3 * MiB + 4096, 6 * MiB):
        _apply(model, off, rnd.randbytes(MiB // 2))
    src = os.path.join(env["root"], "src.raw")
    with open(src, "wb") as f:
        f.write(model)
    run("nbdcopy", src, _uri(info))
    qemu_io(_uri(info), "write -P 0x5a 1048576 65536", "write -P 0xc3 7340544 512")
    _apply(model, MiB, b"\x5a" * 65536)
    _apply(model, 7340544, b"\xc3" * 512)
    qemu_io(info["params_nbd"], "read -P 0x5a 1048576 65536")  # the classic form works for qemu as well

    fsr.v("VDI.deactivate", dp="vm1", vdi=vdi)
    assert not server_pid(env, vdi) and not os.path.exists(sock), "the last deactivate stops the server"
    fsr.v("VDI.detach", dp="vm1", vdi=vdi)
    assert sha(fsr.read_all(vdi)) == sha(bytes(model))

    # Read back through a fresh read-only attach with qemu-img; the RO export refuses writes at the server.
    ro = fsr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)
    assert ro["params_nbd"].endswith(f"exportname={vdi}{dpio.READONLY_SUFFIX}")
    fsr.v("VDI.activate", dp="reader", vdi=vdi)
    assert qemu_read_all(_uri(ro), env["root"]) == bytes(model)
    res = qemu_io(_uri(ro), "write -P 0x11 0 4096", check=False)
    assert b"Permission denied" in res.stderr + res.stdout or b"read-only" in (res.stderr + res.stdout).lower()
    fsr.v("VDI.deactivate", dp="reader", vdi=vdi)
    fsr.v("VDI.detach", dp="reader", vdi=vdi)
    assert sha(fsr.read_all(vdi)) == sha(bytes(model))


@pytest.mark.skipif(not os.path.exists(LIBNBD_PY), reason="needs the system python3 with python3-libnbd")
def test_read_only_attach_refuses_writes_at_the_server(fsr: FileSR, env) -> None:
    vdi = fsr.create(4 * MiB)
    fsr.write(vdi, 0, b"\x77" * 4096)
    info = fsr.v("VDI.attach", dp="ro", vdi=vdi, read_write=False)
    fsr.v("VDI.activate", dp="ro", vdi=vdi)
    script = ("import sys, nbd\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\n"
              "assert h.is_read_only() and bytes(h.pread(4096, 0)) == b'\\x77' * 4096\n"
              "try:\n    h.pwrite(b'x' * 512, 0)\nexcept nbd.Error as e:\n    print('refused', e.errno)\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    res = subprocess.run([LIBNBD_PY, "-c", script, _uri(info)], capture_output=True, text=True, env=clean,
                         timeout=60)
    assert res.returncode == 0 and "refused" in res.stdout, res.stderr
    # Every dp is RO, so the server itself runs read-only: even the plain export name cannot write.
    plain = _uri(info).replace(f"{dpio.READONLY_SUFFIX.replace('@', '%40')}?", "?")
    assert qemu_io(plain, "write 0 512", check=False).returncode != 0
    fsr.v("VDI.deactivate", dp="ro", vdi=vdi)
    fsr.v("VDI.detach", dp="ro", vdi=vdi)
    assert fsr.read_all(vdi)[:4096] == b"\x77" * 4096


def test_two_datapaths_share_one_server_and_follow_the_automaton(fsr: FileSR, env) -> None:
    vdi = fsr.create(4 * MiB)
    w = fsr.v("VDI.attach", dp="writer", vdi=vdi, read_write=True)
    r = fsr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)  # readers may join a writer
    with pytest.raises(Illegal_transition):
        fsr.v("VDI.activate", dp="stranger", vdi=vdi)
    fsr.v("VDI.activate", dp="writer", vdi=vdi)
    pid = server_pid(env, vdi)
    fsr.v("VDI.activate", dp="reader", vdi=vdi)
    assert server_pid(env, vdi) == pid, "one server per VDI, shared by its datapaths"
    qemu_io(_uri(w), "write -P 0x21 0 8192")
    qemu_io(_uri(r), "read -P 0x21 0 8192", readonly=True)
    assert qemu_io(_uri(r), "write -P 0x22 0 512", check=False).returncode != 0  # reader refused by the server
    with pytest.raises(Illegal_transition):
        fsr.v("VDI.detach", dp="writer", vdi=vdi)  # activated: deactivate first
    fsr.v("VDI.deactivate", dp="writer", vdi=vdi)
    assert server_pid(env, vdi) == pid, "the reader still uses it"
    assert fsr.read_all(vdi)[:8192] == b"\x21" * 8192, "deactivate flushed the writer's data"
    fsr.v("VDI.detach", dp="writer", vdi=vdi)
    fsr.v("VDI.deactivate", dp="reader", vdi=vdi)
    assert not server_pid(env, vdi)
    fsr.v("VDI.detach", dp="reader", vdi=vdi)
    # RO first, then RW, is illegal (and leaves no trace).
    fsr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)
    with pytest.raises(Illegal_transition):
        fsr.v("VDI.attach", dp="writer", vdi=vdi, read_write=True)
    fsr.v("VDI.detach", dp="reader", vdi=vdi)
    assert dpio.served(env["run"]) == []


def test_sr_detach_tears_down_every_active_datapath(fsr: FileSR, env) -> None:
    vdis = [fsr.create(2 * MiB), fsr.create(2 * MiB, sm_config={"type": "raw"})]
    for i, vdi in enumerate(vdis):
        info = fsr.v("VDI.attach", dp=f"vm{i}", vdi=vdi, read_write=True)
        fsr.v("VDI.activate", dp=f"vm{i}", vdi=vdi)
        qemu_io(_uri(info), f"write -P {0x30 + i} 0 4096")
    raw_info = fsr.v("VDI.attach", dp="vm1", vdi=vdis[1], read_write=True)
    assert raw_info["params"].endswith(".raw") and raw_info["params"].startswith("/")  # a File for raw VDIs
    assert len(_nbdkits(env["root"])) == 2
    fsr.v("SR.detach")
    assert _nbdkits(env["root"]) == [] and _sockets(env["run"]) == []
    assert dpio.served(env["run"]) == []
    fsr.attach()
    for i, vdi in enumerate(vdis):
        assert fsr.read_all(vdi)[:4096] == bytes([0x30 + i]) * 4096
        with pytest.raises(Illegal_transition):
            fsr.v("VDI.activate", dp=f"vm{i}", vdi=vdi)  # detached by SR.detach
        fsr.v("VDI.destroy", vdi=vdi)


def test_stale_state_of_a_previous_boot_is_cleaned_at_sr_attach(fsr: FileSR, env, monkeypatch) -> None:
    vdi = fsr.create(2 * MiB)
    info = fsr.v("VDI.attach", dp="vm", vdi=vdi, read_write=True)
    fsr.v("VDI.activate", dp="vm", vdi=vdi)
    pid = server_pid(env, vdi)
    # The host restarts: processes die, the (non-tmpfs) run dir keeps its files, the boot id changes.
    procs.terminate(pid)
    sock = info["params_nbd"].split(":")[2]
    assert os.path.exists(sock)
    monkeypatch.setattr(dpruntime, "boot_id", lambda: "another-boot")
    fsr.reload()
    fsr.attach()
    assert not os.path.exists(sock) and dpio.served(env["run"]) == []
    assert not os.listdir(os.path.join(env["run"], "dp", fsr.sr)) if os.path.isdir(
        os.path.join(env["run"], "dp", fsr.sr)) else True
    with open(os.path.join(env["run"], "boot_id")) as f:
        assert f.read().strip() == "another-boot"
    with pytest.raises(Illegal_transition):
        fsr.v("VDI.activate", dp="vm", vdi=vdi)  # nothing of the old boot is trusted
    fsr.v("VDI.destroy", vdi=vdi)  # not "in use" any more


def test_orphan_server_of_a_killed_verb_is_stopped(fsr: FileSR, env) -> None:
    vdi = fsr.create(2 * MiB)
    fsr.v("VDI.attach", dp="vm", vdi=vdi, read_write=True)
    fsr.v("VDI.activate", dp="vm", vdi=vdi)
    # A verb killed after stopping nothing but writing its states: the state says attached, a server runs.
    state_file = os.path.join(env["run"], "dp", fsr.sr, vdi + ".json")
    with open(state_file, "w") as f:
        json.dump({"vm": "Attached(RW)"}, f)
    assert server_pid(env, vdi)
    fsr.v("VDI.detach", dp="vm", vdi=vdi)  # reconciles: the orphan goes with it
    assert not server_pid(env, vdi) and _nbdkits(env["root"]) == []


def test_snapshot_and_resize_while_active_pause_and_refresh_the_server(fsr: FileSR, env) -> None:
    vdi = fsr.create(4 * MiB)
    info = fsr.v("VDI.attach", dp="vm", vdi=vdi, read_write=True)
    fsr.v("VDI.activate", dp="vm", vdi=vdi)
    qemu_io(_uri(info), "write -P 0x41 0 1048576")
    pid = server_pid(env, vdi)
    snap = fsr.snapshot(vdi)
    new_pid = server_pid(env, vdi)
    assert new_pid and new_pid != pid, "the server was restarted on the new leaf"
    # Writes after the snapshot go to the VDI's new leaf, not into the (now hidden) base copy.
    qemu_io(_uri(info), "write -P 0x42 524288 1048576")
    assert fsr.read_all(snap)[:2 * MiB] == b"\x41" * MiB + bytes(MiB)

    new_size = fsr.v("VDI.resize", vdi=vdi, new_size=8 * MiB)
    assert int(run("nbdinfo", "--size", _uri(info)).stdout) == new_size
    qemu_io(_uri(info), f"write -P 0x43 {new_size - 4096} 4096")

    clone = fsr.clone(vdi)
    with pytest.raises(Backend_error, match="VDIInUse|SR_BACKEND_FAILURE_24"):
        fsr.v("VDI.destroy", vdi=vdi)
    fsr.v("VDI.deactivate", dp="vm", vdi=vdi)
    fsr.v("VDI.detach", dp="vm", vdi=vdi)

    expected = bytearray(new_size)
    _apply(expected, 0, b"\x41" * MiB)
    _apply(expected, 524288, b"\x42" * MiB)
    _apply(expected, new_size - 4096, b"\x43" * 4096)
    assert sha(fsr.read_all(vdi)) == sha(bytes(expected))
    assert fsr.read_all(clone)[:2 * MiB] == bytes(expected[:2 * MiB])
    assert fsr.read_all(snap)[:MiB] == b"\x41" * MiB


def test_reset_on_boot_of_an_active_vdi_is_refused(fsr: FileSR, env) -> None:
    vdi = fsr.create(2 * MiB)
    fsr.v("VDI.set_persistent", vdi=vdi, persistent=False)
    fsr.v("VDI.attach", dp="vm", vdi=vdi, read_write=True)
    fsr.v("VDI.activate", dp="vm", vdi=vdi)
    with pytest.raises(Backend_error, match="SR_BACKEND_FAILURE_24"):
        fsr.v("VDI.epoch_begin", vdi=vdi)
    fsr.v("VDI.deactivate", dp="vm", vdi=vdi)
    fsr.v("VDI.epoch_begin", vdi=vdi)  # attached only: fine
    fsr.v("VDI.detach", dp="vm", vdi=vdi)


def test_smapiv3_datapath_per_verb_executables(fsr: FileSR, env) -> None:
    plugin = os.path.join(env["root"], "v3")
    install_plugin("file", plugin, api="v3")

    def call(verb: str, **args: object) -> object:
        p = subprocess.run([os.path.join(plugin, verb), "--json"], input=json.dumps({"dbg": "t", **args}) + "\n",
                           capture_output=True, text=True, timeout=60, env=os.environ.copy())
        assert p.returncode == 0, (verb, p.stdout, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else None

    vdi = fsr.create(4 * MiB)
    uri = f"smapi://{fsr.sr}/{vdi}"
    call("Datapath.open", uri=uri, persistent=True)
    backend = call("Datapath.attach", uri=uri, domain="7")
    assert isinstance(backend, dict)
    kinds = [impl[0] for impl in backend["implementations"]]
    assert kinds == ["XenDisk", "Nbd"], backend  # a guest domain needs a Xen backend (qdisk over the export)
    nbd = backend["implementations"][1][1]["uri"]
    assert backend["implementations"][0][1] == {"params": nbd, "extra": {}, "backend_type": "qdisk"}
    assert nbd.startswith("nbd:unix:") and nbd.endswith(f":exportname={vdi}")
    call("Datapath.activate", uri=uri, domain="7")
    # The server outlives the per-verb process that started it.
    qemu_io(nbd, "write -P 0x55 0 65536")
    call("Datapath.deactivate", uri=uri, domain="7")
    call("Datapath.detach", uri=uri, domain="7")
    call("Datapath.close", uri=uri)
    assert _nbdkits(env["root"]) == [] and _sockets(env["run"]) == []
    assert fsr.read_all(vdi)[:65536] == b"\x55" * 65536
