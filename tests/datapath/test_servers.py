"""The servers of a VDI: start (idempotent for the same owner, mode and image), stop, flush, owners kept apart,
failures that leave nothing, safe names, and loop devices over a raw region."""

from __future__ import annotations

import os

import pytest

from smapi import datapath
from smapi.datapath import DatapathError, DatapathInUse, ImageSpec, LoopDevices, blockdev, procs

from .dptestlib import MiB, make_chain, qemu_io, run

OWNER = "sr:one"


@pytest.fixture
def leaf(scratch) -> str:
    return make_chain(scratch, 8 * MiB, depth=2)[0]


def test_start_is_idempotent_and_stop_removes_everything(leaf, run_dir):
    spec = ImageSpec("vhd", leaf)
    ex = datapath.start("v", spec, readonly=False, owner=OWNER, run_dir=run_dir)
    assert ex.running() and ex.owner == OWNER and not ex.readonly
    assert ex.socket == datapath.address("v", run_dir=run_dir)  # known before the start
    # The same owner, mode and image (named differently): the running server is kept.
    same = ImageSpec("vhd", os.path.relpath(leaf), os.path.dirname(leaf) + "/")
    assert datapath.start("v", same, readonly=False, owner=OWNER, run_dir=run_dir).pid == ex.pid
    qemu_io(ex.uri, "write -P 0x10 0 4096")
    assert datapath.flush("v", run_dir=run_dir)
    assert datapath.served(run_dir) == ["v"] and datapath.served(run_dir, "sr:other") == []
    assert datapath.stop("v", owner=OWNER, run_dir=run_dir)
    assert not procs.running(ex.pid) and datapath.server("v", run_dir=run_dir) is None
    assert os.listdir(os.path.join(run_dir, "nbd")) == []
    # Stopping what does not run never fails.
    assert not datapath.stop("v", owner=OWNER, run_dir=run_dir)
    assert not datapath.flush("v", run_dir=run_dir)


def test_a_leftover_in_the_other_mode_is_replaced(leaf, run_dir):
    ro = datapath.start("v", ImageSpec("vhd", leaf), readonly=True, owner=OWNER, run_dir=run_dir)
    rw = datapath.start("v", ImageSpec("vhd", leaf), readonly=False, owner=OWNER, run_dir=run_dir)
    assert rw.pid != ro.pid and not rw.readonly and not procs.running(ro.pid)
    qemu_io(rw.uri, "write -P 0x11 0 4096")
    datapath.stop("v", owner=OWNER, run_dir=run_dir)


def test_another_owners_server_is_never_taken_over(leaf, run_dir):
    ex = datapath.start("v", ImageSpec("vhd", leaf), readonly=True, owner=OWNER, run_dir=run_dir)
    with pytest.raises(DatapathInUse, match=OWNER):
        datapath.start("v", ImageSpec("vhd", leaf), readonly=True, owner="sr:two", run_dir=run_dir)
    assert not datapath.stop("v", owner="sr:two", run_dir=run_dir)
    assert ex.running() and datapath.serving("v", owner=OWNER, run_dir=run_dir)
    assert not datapath.serving("v", owner="sr:two", run_dir=run_dir)
    datapath.stop("v", owner=OWNER, run_dir=run_dir)


def test_start_restarts_a_dead_server(leaf, run_dir):
    ex = datapath.start("v", ImageSpec("vhd", leaf), readonly=False, owner=OWNER, run_dir=run_dir)
    os.kill(ex.pid, 9)
    procs.terminate(ex.pid)  # reap it (it is this process's child)
    assert not datapath.serving("v", owner=OWNER, run_dir=run_dir)
    again = datapath.start("v", ImageSpec("vhd", leaf), readonly=False, owner=OWNER, run_dir=run_dir)
    assert again.running() and again.pid != ex.pid
    qemu_io(again.uri, "write -P 0x10 0 4096")
    datapath.stop("v", owner=OWNER, run_dir=run_dir)


def test_start_failure_is_reported_and_leaves_nothing(scratch, run_dir):
    leaf = make_chain(scratch, 4 * MiB, depth=2)[0]
    os.unlink(os.path.join(scratch, "d0.vhd"))  # the parent is gone
    with pytest.raises(DatapathError, match="parent"):
        datapath.start("v", ImageSpec("vhd", leaf), readonly=False, owner=OWNER, run_dir=run_dir)
    assert datapath.server("v", run_dir=run_dir) is None
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_unusual_vdi_keys_get_safe_names(leaf, run_dir):
    key = "sr/with spaces/../" + "x" * 200
    ex = datapath.start(key, ImageSpec("vhd", leaf), readonly=True, owner=OWNER, run_dir=run_dir)
    assert os.path.dirname(ex.socket) == os.path.join(run_dir, "nbd") and len(ex.socket) < 108
    assert ex.params_nbd.endswith(f":exportname={key}")
    assert "%2F" in ex.uri and " " not in ex.uri
    qemu_io(ex.uri, "read 0 512", readonly=True)
    default = "nbd+unix:///?socket=" + ex.socket  # the default (empty) export name reaches it as well
    qemu_io(default, "read 0 512", readonly=True)
    datapath.stop(key, owner=OWNER, run_dir=run_dir)
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


needs_loop = pytest.mark.skipif(not LoopDevices.available(), reason="loop devices need root and /dev/loop-control")


@needs_loop
def test_loop_devices_over_a_raw_region(scratch, run_dir):
    path = os.path.join(scratch, "disk.raw")
    with open(path, "wb") as f:
        f.write(os.urandom(4 * MiB))
    region = (path, MiB, 2 * MiB)
    dev = blockdev.ensure(run_dir, "r", region, owner=OWNER, readonly=False)
    try:
        assert blockdev.ensure(run_dir, "r", region, owner=OWNER, readonly=False) == dev  # idempotent
        assert LoopDevices().backing_file(dev) == path and LoopDevices.region(dev) == (MiB, 2 * MiB)
        fd = os.open(dev, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\x42" * 4096, 8192)
            os.fsync(fd)
        finally:
            os.close(fd)
        ro = blockdev.ensure(run_dir, "r", region, owner=OWNER, readonly=True)  # a reader gets its own device
        assert ro != dev and run("blockdev", "--getro", ro).stdout.strip() == b"1"
        assert blockdev.recorded(run_dir, OWNER) == {"r": dev} or blockdev.recorded(run_dir, OWNER) == {"r": ro}
        assert blockdev.recorded(run_dir, "sr:other") == {}
    finally:
        assert blockdev.release(run_dir, "r")
    assert LoopDevices().backing_file(dev) is None
    with open(path, "rb") as f:
        f.seek(MiB + 8192)
        assert f.read(4096) == b"\x42" * 4096
