"""Data through the NBD datapath with real clients (qemu-img, qemu-io, nbdcopy, nbdinfo, python3-libnbd), checked
in the VHD afterwards with smapi.vhd and against qemu-img's view of the export."""

from __future__ import annotations

import json
import os

import pytest

import smapi.vhd as vhd
from smapi import datapath
from smapi.datapath import ImageSpec, NbdServer
from smapi.datapath.nbdclient import NbdClient

from .dptestlib import (
    BLOCK,
    MiB,
    chain_bytes,
    file_sha,
    libnbd,
    libnbd_available,
    make_chain,
    pyvhdi_available,
    pyvhdi_read,
    qemu_convert_to_raw,
    qemu_io,
    run,
    sha,
)

SIZE = 16 * MiB


OWNER = "sr:test"


def _attach(run_dir: str, leaf: str, *, readonly: bool = False, vdi: str = "vdi-a"):
    res = datapath.start(vdi, ImageSpec("vhd", leaf), readonly=readonly, owner=OWNER, run_dir=run_dir)
    return res


def _release(run_dir: str, vdi: str = "vdi-a") -> None:
    datapath.stop(vdi, owner=OWNER, run_dir=run_dir)


def test_chain_served_as_raw_disk(scratch, run_dir):
    size = 4 * SIZE  # room for unallocated blocks
    leaf, model = make_chain(scratch, size, depth=4)
    res = _attach(run_dir, leaf, readonly=True)
    try:
        assert res.params_nbd == f"nbd:unix:{run_dir}/nbd/vdi-a.sock:exportname=vdi-a"
        assert res.uri == f"nbd+unix:///vdi-a?socket={run_dir}/nbd/vdi-a.sock"
        # Standard URI: qemu's raw view of the export equals the chain, byte for byte.
        assert sha(qemu_convert_to_raw(res.uri, os.path.join(scratch, "q.raw"))) == sha(bytes(model))
        # nbdcopy to a file.
        out = os.path.join(scratch, "c.raw")
        run("nbdcopy", res.uri, out)
        with open(out, "rb") as f:
            assert sha(f.read()) == sha(bytes(model))
        # The classic params_nbd form is understood by qemu too.
        info = json.loads(run("qemu-img", "info", "--output=json", res.params_nbd).stdout)
        assert info["virtual-size"] == size
        # Allocation map: blocks no image maps are holes that read as zeros, the others data.
        mapping = json.loads(run("nbdinfo", "--map", "--json", res.uri).stdout)
        seen = bytearray(size // BLOCK)
        for e in mapping:
            for blk in range(e["offset"] // BLOCK, (e["offset"] + e["length"]) // BLOCK):
                seen[blk] = 0 if e["type"] == 3 else 1
        with vhd.open_chain(leaf) as chain:
            assert seen == chain.allocation_map() and 0 in seen
    finally:
        _release(run_dir)


def test_qemu_io_writes_land_in_the_leaf(scratch, run_dir):
    leaf, model = make_chain(scratch, SIZE, depth=3)
    parents_before = {p: file_sha(os.path.join(scratch, p)) for p in ("d0.vhd", "d1.vhd")}
    res = _attach(run_dir, leaf)
    writes = [(0, 512, 0x11), (BLOCK - 4096, 8192, 0x22), (5 * MiB + 3, 70001, 0x33), (SIZE - 512, 512, 0x44)]
    try:
        for off, n, pat in writes:
            qemu_io(res.uri, f"write -P {pat:#x} {off} {n}")
            model[off : off + n] = bytes([pat]) * n
        # Unaligned requests (qemu-io issues them as given) and zeroing of mapped data.
        qemu_io(res.uri, f"write -z {3 * BLOCK} {BLOCK}")
        model[3 * BLOCK : 4 * BLOCK] = bytes(BLOCK)
        qemu_io(res.uri, f"read -P 0x33 {5 * MiB + 3} 70001")
    finally:
        _release(run_dir)
    assert sha(chain_bytes(leaf)) == sha(bytes(model))
    report = vhd.check(leaf)
    assert report.ok, report.errors
    # Only the leaf was written.
    for p, digest in parents_before.items():
        assert file_sha(os.path.join(scratch, p)) == digest


@pytest.mark.skipif(not pyvhdi_available(), reason="pyvhdi not importable (Debian python3-libvhdi)")
def test_libvhdi_reads_what_nbd_clients_wrote(scratch, run_dir):
    # libvhdi is an independent reader of the bitmaps and BAT the plugin wrote (4 KiB aligned: its bitmap bug).
    leaf, model = make_chain(scratch, SIZE, depth=3, align=4096)
    res = _attach(run_dir, leaf)
    try:
        qemu_io(res.uri, "write -P 0x61 12288 1M", f"write -P 0x62 {SIZE - 8192} 8192")
        model[12288 : 12288 + MiB] = b"\x61" * MiB
        model[SIZE - 8192 :] = b"\x62" * 8192
    finally:
        _release(run_dir)
    paths = [os.path.join(scratch, f"d{i}.vhd") for i in range(3)]
    assert sha(pyvhdi_read(paths)) == sha(bytes(model))


def test_nbdcopy_whole_disk_then_qemu_img_convert(scratch, run_dir):
    leaf, _ = make_chain(scratch, SIZE, depth=2)
    src = os.path.join(scratch, "src.raw")
    data = bytearray(os.urandom(SIZE))
    data[4 * BLOCK : 6 * BLOCK] = bytes(2 * BLOCK)  # zero runs exercise nbdcopy's zero requests
    with open(src, "wb") as f:
        f.write(data)
    res = _attach(run_dir, leaf)
    try:
        run("nbdcopy", src, res.uri)
        assert sha(qemu_convert_to_raw(res.uri, os.path.join(scratch, "back.raw"))) == sha(bytes(data))
    finally:
        _release(run_dir)
    assert sha(chain_bytes(leaf)) == sha(bytes(data))


@pytest.mark.skipif(not libnbd_available(), reason="python3-libnbd not installed for /usr/bin/python3")
def test_libnbd_writes_visible_after_deactivate(scratch, run_dir):
    leaf, model = make_chain(scratch, SIZE, depth=2)
    res = _attach(run_dir, leaf)
    try:
        out = libnbd("h.pwrite(b'libnbd!' * 1000, 1048577)\n"
                     "assert h.pread(7, 1048577) == b'libnbd!'\n"
                     "print(h.get_size(), h.can_flush(), h.is_read_only())\n"
                     "h.shutdown()\n", res.uri)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [str(SIZE), "True", "False"]
        model[1048577 : 1048577 + 7000] = b"libnbd!" * 1000
        # A flush (what deactivate asks for): the server still runs, yet a fresh reader of the VHD file sees the data.
        assert datapath.flush("vdi-a", run_dir=run_dir)
        assert datapath.serving("vdi-a", owner=OWNER, run_dir=run_dir)
        assert sha(chain_bytes(leaf)) == sha(bytes(model))
    finally:
        _release(run_dir)


def test_readonly_export_refuses_writes(scratch, run_dir):
    leaf, model = make_chain(scratch, SIZE, depth=2)
    before = {p: file_sha(os.path.join(scratch, p)) for p in os.listdir(scratch) if p.endswith(".vhd")}
    res = _attach(run_dir, leaf, readonly=True)
    try:
        assert res.readonly
        info = run("nbdinfo", "--json", res.uri).stdout
        assert json.loads(info)["exports"][0]["is_read_only"] is True
        bad = qemu_io(res.uri, "write -P 0x55 0 4096", check=False)
        assert bad.returncode != 0 or b"failed" in bad.stdout + bad.stderr
        if libnbd_available():
            out = libnbd("try:\n    h.pwrite(b'x' * 512, 0)\nexcept nbd.Error as e:\n    print('refused', e.errno)\n",
                         res.uri)
            assert out.stdout.startswith("refused"), out.stdout + out.stderr
        assert sha(qemu_convert_to_raw(res.uri, os.path.join(scratch, "ro.raw"))) == sha(bytes(model))
    finally:
        _release(run_dir)
    after = {p: file_sha(os.path.join(scratch, p)) for p in before}
    assert after == before


def test_two_exports_at_once(scratch, run_dir):
    da, db = os.path.join(scratch, "a"), os.path.join(scratch, "b")
    os.mkdir(da)
    os.mkdir(db)
    leaf_a, model_a = make_chain(da, SIZE, depth=2, seed=1)
    leaf_b, model_b = make_chain(db, SIZE, depth=1, seed=2)
    ra = _attach(run_dir, leaf_a, vdi="vdi-a")
    rb = _attach(run_dir, leaf_b, vdi="vdi-b")
    try:
        assert ra.params_nbd != rb.params_nbd
        qemu_io(ra.uri, "write -P 0xaa 0 1M")
        qemu_io(rb.uri, "write -P 0xbb 0 1M")
        model_a[: MiB] = b"\xaa" * MiB
        model_b[: MiB] = b"\xbb" * MiB
        # A client asking one socket for the other VDI's export name is refused.
        wrong = ra.uri.replace("/vdi-a?", "/vdi-b?")
        assert run("qemu-img", "info", wrong, check=False).returncode != 0
    finally:
        _release(run_dir, "vdi-a")
        _release(run_dir, "vdi-b")
    assert sha(chain_bytes(leaf_a)) == sha(bytes(model_a))
    assert sha(chain_bytes(leaf_b)) == sha(bytes(model_b))
    assert os.listdir(os.path.join(run_dir, "nbd")) == []


def test_raw_file_over_nbd(scratch, run_dir):
    path = os.path.join(scratch, "disk.raw")
    data = os.urandom(4 * MiB)
    with open(path, "wb") as f:
        f.write(data)
    res = datapath.start("raw-1", ImageSpec("raw", path), readonly=False, owner=OWNER, run_dir=run_dir)
    try:
        qemu_io(res.uri, "write -P 0x77 4095 10")
        assert sha(qemu_convert_to_raw(res.uri, os.path.join(scratch, "r.raw"))) == \
            sha(data[:4095] + b"\x77" * 10 + data[4105:])
    finally:
        datapath.stop("raw-1", owner=OWNER, run_dir=run_dir)
    with open(path, "rb") as f:
        assert f.read(4105)[4095:] == b"\x77" * 10


def test_unflushed_writes_are_committed_when_the_server_stops(scratch, run_dir):
    # No NBD flush at all: nbdkit's SIGTERM shutdown runs the plugin's cleanup, which commits the metadata.
    leaf, model = make_chain(scratch, SIZE, depth=2)
    server = NbdServer(run_dir)
    ex = server.start("raw-writes", ImageSpec("vhd", leaf), readonly=False)
    with NbdClient(ex.socket, ex.export) as client:
        assert client.info.size == SIZE and not client.info.readonly
        for off in (0, 3 * BLOCK + 512, SIZE - BLOCK):  # new blocks in the leaf: BAT entries to commit
            client.pwrite(b"\xc3" * 4096, off)
            model[off : off + 4096] = b"\xc3" * 4096
        assert client.pread(4096, 3 * BLOCK + 512) == b"\xc3" * 4096
    # Not yet reachable in the file (the BAT is committed at flush or stop), so the stop below is what commits.
    assert sha(chain_bytes(leaf)) != sha(bytes(model))
    assert server.stop("raw-writes")
    assert sha(chain_bytes(leaf)) == sha(bytes(model))
    assert vhd.check(leaf).ok
