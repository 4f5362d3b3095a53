"""The attach/activate/deactivate/detach facade: refcounts over several datapaths, modes, loop devices, records."""

from __future__ import annotations

import json
import os

import pytest

from smapi import datapath
from smapi.datapath import DatapathError, ImageSpec, LoopDevices, kernel_nbd_available, procs
from smapi.interface.errors import Illegal_transition

from .dptestlib import MiB, make_chain, qemu_io, run


@pytest.fixture
def leaf(scratch) -> str:
    return make_chain(scratch, 8 * MiB, depth=2)[0]


def _record(run_dir: str, vdi: str) -> dict:
    with open(os.path.join(run_dir, "datapath", vdi + ".json")) as f:
        return json.load(f)


def test_two_datapaths_share_one_server(leaf, run_dir):
    spec = ImageSpec("vhd", leaf)
    r1 = datapath.attach("v", spec, dp="dp1", readonly=False, run_dir=run_dir)
    r2 = datapath.attach("v", spec, dp="dp2", readonly=False, run_dir=run_dir)
    assert r1 == r2
    pid = datapath.stat("v", run_dir=run_dir)["server"]["pid"]
    datapath.activate("v", dp="dp1", run_dir=run_dir)
    datapath.activate("v", dp="dp2", run_dir=run_dir)
    assert _record(run_dir, "v")["dps"] == {"dp1": "Activated(RW)", "dp2": "Activated(RW)"}
    # Idempotent: the same dp attaching again changes nothing.
    assert datapath.attach("v", spec, dp="dp1", readonly=False, run_dir=run_dir) == r1
    assert _record(run_dir, "v")["dps"]["dp1"] == "Activated(RW)"

    datapath.deactivate("v", dp="dp1", run_dir=run_dir)
    datapath.detach("v", dp="dp1", run_dir=run_dir)
    st = datapath.stat("v", run_dir=run_dir)
    assert st["server"]["pid"] == pid and st["server"]["running"] and st["dps"] == {"dp2": "Activated(RW)"}
    qemu_io(r1.nbd_uri, "read 0 4096")  # still served for dp2

    datapath.deactivate("v", dp="dp2", run_dir=run_dir)
    datapath.detach("v", dp="dp2", run_dir=run_dir)
    assert datapath.stat("v", run_dir=run_dir)["server"] is None
    assert not os.path.exists(os.path.join(run_dir, "nbd", "v.sock"))
    assert not procs.running(pid)
    assert sorted(os.listdir(os.path.join(run_dir, "datapath"))) == ["v.lock"]
    assert os.listdir(os.path.join(run_dir, "nbd")) == []
    # Detaching what is not attached never fails.
    datapath.detach("v", dp="dp2", run_dir=run_dir)
    datapath.deactivate("v", dp="dp9", run_dir=run_dir)


def test_read_only_and_read_write_do_not_mix(leaf, run_dir):
    spec = ImageSpec("vhd", leaf)
    datapath.attach("v", spec, dp="ro1", readonly=True, run_dir=run_dir)
    datapath.attach("v", spec, dp="ro2", readonly=True, run_dir=run_dir)
    with pytest.raises(Illegal_transition) as e:
        datapath.attach("v", spec, dp="rw", readonly=False, run_dir=run_dir)
    assert e.value.params == ("Attached(RO)", "Attached(RW)")
    with pytest.raises(Illegal_transition):  # nor RO -> RW on the same dp
        datapath.attach("v", spec, dp="ro1", readonly=False, run_dir=run_dir)
    assert datapath.stat("v", run_dir=run_dir)["dps"] == {"ro1": "Attached(RO)", "ro2": "Attached(RO)"}
    for dp in ("ro1", "ro2"):
        datapath.detach("v", dp=dp, run_dir=run_dir)
    # Once everything is detached the other mode is fine.
    datapath.attach("v", spec, dp="rw", readonly=False, run_dir=run_dir)
    datapath.detach("v", dp="rw", run_dir=run_dir)


def test_activate_needs_attach(leaf, run_dir):
    with pytest.raises(Illegal_transition):
        datapath.activate("v", dp="dp1", run_dir=run_dir)


def test_activate_restarts_a_dead_server(leaf, run_dir):
    res = datapath.attach("v", ImageSpec("vhd", leaf), dp="dp1", readonly=False, run_dir=run_dir)
    pid = datapath.stat("v", run_dir=run_dir)["server"]["pid"]
    os.kill(pid, 9)
    procs.terminate(pid)  # reap it (it is this process's child)
    datapath.activate("v", dp="dp1", run_dir=run_dir)
    st = datapath.stat("v", run_dir=run_dir)
    assert st["server"]["running"] and st["server"]["pid"] != pid
    qemu_io(res.nbd_uri, "write -P 0x10 0 4096")
    datapath.deactivate("v", dp="dp1", run_dir=run_dir)
    datapath.detach("v", dp="dp1", run_dir=run_dir)


def test_start_failure_is_reported_and_leaves_nothing(scratch, run_dir):
    leaf = make_chain(scratch, 4 * MiB, depth=2)[0]
    os.unlink(os.path.join(scratch, "d0.vhd"))  # the parent is gone
    with pytest.raises(DatapathError, match="parent"):
        datapath.attach("v", ImageSpec("vhd", leaf), dp="dp1", readonly=False, run_dir=run_dir)
    assert datapath.stat("v", run_dir=run_dir)["server"] is None
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_unusual_vdi_keys_get_safe_names(leaf, run_dir):
    key = "sr/with spaces/../" + "x" * 200
    res = datapath.attach(key, ImageSpec("vhd", leaf), dp="dp1", readonly=True, run_dir=run_dir)
    sock = res.params_nbd.split(":")[2]
    assert os.path.dirname(sock) == os.path.join(run_dir, "nbd") and len(sock) < 108
    assert res.params_nbd.endswith(f":exportname={key}")
    assert "%2F" in res.nbd_uri and " " not in res.nbd_uri
    qemu_io(res.nbd_uri, "read 0 512", readonly=True)
    default = "nbd+unix:///?socket=" + sock  # the default (empty) export name reaches it as well
    qemu_io(default, "read 0 512", readonly=True)
    datapath.detach(key, dp="dp1", run_dir=run_dir)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


needs_loop = pytest.mark.skipif(not LoopDevices.available(), reason="loop devices need root and /dev/loop-control")


@needs_loop
def test_raw_file_as_loop_device(scratch, run_dir):
    path = os.path.join(scratch, "disk.raw")
    with open(path, "wb") as f:
        f.write(os.urandom(4 * MiB))
    spec = ImageSpec("raw", path)
    res = datapath.attach("r", spec, dp="dp1", readonly=False, run_dir=run_dir, block_device=True)
    try:
        kinds = [k for k, _ in res.implementations]
        assert kinds == ["File", "BlockDevice", "Nbd", "Nbd"]
        dev = res.implementations[1][1]["path"]
        assert res.params == dev and LoopDevices().backing_file(dev) == path
        fd = os.open(dev, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\x42" * 4096, 8192)
            os.fsync(fd)
        finally:
            os.close(fd)
        # The same bytes through the NBD export of the file.
        qemu_io(res.nbd_uri, "read -P 0x42 8192 4096")
        # A second dp shares the loop device.
        assert datapath.attach("r", spec, dp="dp2", readonly=False, run_dir=run_dir, block_device=True) == res
        datapath.detach("r", dp="dp2", run_dir=run_dir)
        assert LoopDevices().backing_file(dev) == path
    finally:
        datapath.detach("r", dp="dp1", run_dir=run_dir)
    assert LoopDevices().backing_file(dev) is None
    with open(path, "rb") as f:
        f.seek(8192)
        assert f.read(4096) == b"\x42" * 4096


@needs_loop
def test_read_only_loop_device_refuses_writes(scratch, run_dir):
    path = os.path.join(scratch, "disk.raw")
    with open(path, "wb") as f:
        f.write(bytes(MiB))
    res = datapath.attach("r", ImageSpec("raw", path), dp="dp1", readonly=True, run_dir=run_dir, block_device=True)
    try:
        assert [k for k, _ in res.implementations] == ["BlockDevice", "Nbd", "Nbd", "File"]
        dev = res.params
        fd = None
        with pytest.raises(OSError):  # refused at open or at the write, depending on the kernel
            fd = os.open(dev, os.O_WRONLY)
            os.pwrite(fd, b"x" * 4096, 0)
            os.fsync(fd)
        if fd is not None:
            os.close(fd)
        assert run("blockdev", "--getro", dev).stdout.strip() == b"1"
    finally:
        datapath.detach("r", dp="dp1", run_dir=run_dir)
    assert LoopDevices().backing_file(dev) is None


@pytest.mark.skipif(kernel_nbd_available(), reason="this host has a kernel NBD client")
def test_block_device_for_vhd_is_refused_without_kernel_nbd(leaf, run_dir):
    with pytest.raises(DatapathError):
        datapath.attach("v", ImageSpec("vhd", leaf), dp="dp1", readonly=False, run_dir=run_dir, block_device=True)


def test_image_specs_compare_by_meaning(leaf, run_dir):
    spec = ImageSpec("vhd", leaf)
    assert spec == ImageSpec("vhd", os.path.relpath(leaf), os.path.dirname(leaf))
    datapath.attach("v", spec, dp="dp1", readonly=True, run_dir=run_dir)
    datapath.attach("v", ImageSpec("vhd", leaf, os.path.dirname(leaf) + "/"), dp="dp2", readonly=True,
                    run_dir=run_dir)
    with pytest.raises(DatapathError, match="attached from"):
        datapath.attach("v", ImageSpec("raw", leaf), dp="dp3", readonly=True, run_dir=run_dir)
    for dp in ("dp1", "dp2"):
        datapath.detach("v", dp=dp, run_dir=run_dir)
