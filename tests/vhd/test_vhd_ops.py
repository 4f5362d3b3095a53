"""Functional tests of the public API on real files."""

import os
import random
import struct

import pytest

import smapi.vhd as vhd
from smapi.vhd import constants as C
from smapi.vhd.constants import GiB, KiB, MiB
from smapi.vhd.geometry import chs


def rnd(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def write_raw(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def full_read(path, **kw) -> bytes:
    with vhd.open_chain(path, **kw) as c:
        return c.read(0, c.size)


@pytest.mark.parametrize("size,expect", [(64 * MiB, (963, 8, 17)), (100 * MiB, (1003, 12, 17)),
                                         (2 * GiB, (4161, 16, 63)), (127 * GiB, (65278, 16, 255)),
                                         (2040 * GiB, (65535, 16, 255))])
def test_geometry_table(size, expect):
    assert chs(size) == expect


def test_create_dynamic_layout(tmp_path):
    p = tmp_path / "d.vhd"
    inf = vhd.create_dynamic(p, 100 * MiB + 1)
    assert inf.virtual_size == 102 * MiB  # rounded up to whole 2 MiB blocks, as blktap
    raw = p.read_bytes()
    assert raw[:8] == b"conectix" and raw[-512:] == raw[:512]
    assert raw[512:520] == b"cxsparse"
    table = struct.unpack_from(">Q", raw, 512 + 16)[0]
    assert table == 1536
    assert raw[1536 : 1536 + 51 * 4] == b"\xff" * 204
    bm_hdr = 1536 + C.pad512(51 * 4)
    assert raw[bm_hdr : bm_hdr + 8] == b"tdbatmap"
    assert raw[28:32] == b"tap\0"


def test_fixed_roundtrip(tmp_path):
    p = tmp_path / "f.vhd"
    vhd.create_fixed(p, 3 * MiB + 100)
    with vhd.open_chain(p, writable=True) as c:
        assert c.size == 3 * MiB + 512
        c.write(12345, b"hello")
    assert os.path.getsize(p) == 3 * MiB + 1024
    assert full_read(p)[12345:12350] == b"hello"


def test_unaligned_io_and_reopen(tmp_path):
    p = tmp_path / "a.vhd"
    vhd.create_dynamic(p, 8 * MiB)
    model = bytearray(8 * MiB)
    with vhd.open_chain(p, writable=True) as c:
        for i in range(40):
            r = random.Random(i)
            off = r.randrange(8 * MiB - 1)
            n = min(r.randrange(1, 3 * MiB), 8 * MiB - off)
            d = rnd(i, n)
            c.write(off, d)
            model[off : off + n] = d
    assert full_read(p) == model
    assert vhd.check(p).ok, vhd.check(p).errors


def test_snapshot_chain_and_depth_limit(tmp_path):
    base = tmp_path / "v0.vhd"
    vhd.create_dynamic(base, 4 * MiB, block_size=64 * KiB)
    model = bytearray(4 * MiB)
    prev = base
    for d in range(1, 30):
        with vhd.open_chain(prev, writable=True) as c:
            off = d * 100 * KiB
            c.write(off, rnd(d, 70 * KiB))
            model[off : off + 70 * KiB] = rnd(d, 70 * KiB)
        cur = tmp_path / f"v{d}.vhd"
        inf = vhd.snapshot(prev, cur)
        assert inf.parent_name == prev.name and inf.disk_type == "differencing"
        prev = cur
    with vhd.open_chain(prev) as c:
        assert c.depth == 30
        assert c.read(0, c.size) == model
    with pytest.raises(vhd.ChainTooDeep):
        vhd.snapshot(prev, tmp_path / "v30.vhd")
    assert not (tmp_path / "v30.vhd").exists()


def test_snapshot_is_metadata_only(tmp_path):
    base = tmp_path / "b.vhd"
    vhd.create_dynamic(base, 64 * MiB)
    with vhd.open_chain(base, writable=True) as c:
        c.write(0, rnd(1, 32 * MiB))
    child = tmp_path / "c.vhd"
    vhd.snapshot(base, child)
    assert os.path.getsize(child) < 16 * KiB
    assert vhd.allocated_blocks(child) == 0 and vhd.allocated_blocks(base) == 16


def test_hidden_marker_info_scan(tmp_path):
    a, b = tmp_path / "a.vhd", tmp_path / "b.vhd"
    vhd.create_dynamic(a, 10 * MiB)
    vhd.snapshot(a, b)
    vhd.set_hidden(a, True)
    vhd.set_marker(a, 7)
    assert vhd.info(a).hidden and vhd.info(a).marker == 7
    raw = a.read_bytes()
    assert raw[85] == 1 and raw[-512 + 85] == 1  # both footers
    (tmp_path / "junk.vhd").write_bytes(b"x" * 5000)
    res = {os.path.basename(i.name): i for i in vhd.scan_headers(tmp_path)}
    assert res["a.vhd"].hidden and res["a.vhd"].parent_uuid is None
    assert res["b.vhd"].parent_uuid == res["a.vhd"].uuid and res["b.vhd"].parent_name == "a.vhd"
    assert res["b.vhd"].virtual_size == 10 * MiB and res["b.vhd"].physical_size == os.path.getsize(b)
    assert res["junk.vhd"].error and "footer" in res["junk.vhd"].error
    vhd.set_hidden(a, False)
    assert not vhd.info(a).hidden


def test_resize_in_room_and_beyond(tmp_path):
    p = tmp_path / "r.vhd"
    vhd.create_dynamic(p, 4 * MiB, max_size=16 * MiB)
    with vhd.open_chain(p, writable=True) as c:
        c.write(MiB, rnd(1, 3 * MiB))
    before = p.read_bytes()[512:1536]
    assert vhd.resize(p, 10 * MiB) == 10 * MiB
    assert p.read_bytes()[512:1536] == before  # footer-only grow: header untouched
    assert vhd.resize(p, 40 * MiB) == 40 * MiB  # BAT moves to the end; blocks stay
    with vhd.open_chain(p, writable=True) as c:
        assert c.read(MiB, 3 * MiB) == rnd(1, 3 * MiB)
        assert c.read(4 * MiB, 36 * MiB) == bytes(36 * MiB)
        c.write(30 * MiB, b"z" * 5000)
    assert full_read(p)[30 * MiB : 30 * MiB + 5000] == b"z" * 5000
    rep = vhd.check(p)
    assert rep.ok, rep.errors
    with pytest.raises(vhd.InvalidArgument):
        vhd.resize(p, 2 * MiB)


def test_coalesce_and_reparent(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.vhd", "b.vhd", "c.vhd"))
    vhd.create_dynamic(a, 8 * MiB)
    with vhd.open_chain(a, writable=True) as ch:
        ch.write(0, rnd(1, 8 * MiB))
    vhd.snapshot(a, b)
    with vhd.open_chain(b, writable=True) as ch:
        ch.write(3 * MiB + 777, rnd(2, 1 * MiB))  # partial blocks: bitmap merging
        ch.write(6 * MiB, rnd(3, 2 * MiB))  # whole block
    vhd.snapshot(b, c)
    with vhd.open_chain(c, writable=True) as ch:
        ch.write(100, b"leaf")
    view = full_read(c)
    sectors = vhd.coalesce(b)
    assert sectors > 0
    vhd.set_parent(c, "a.vhd", expected_uuid=vhd.info(a).uuid)
    os.unlink(b)
    assert full_read(c) == view
    with vhd.open_chain(c) as ch:
        assert ch.depth == 2
    assert vhd.check(c).ok and vhd.check(a).ok
    with pytest.raises(vhd.ParentMismatch):
        vhd.set_parent(c, "a.vhd", expected_uuid="00000000-0000-0000-0000-000000000001")
    with pytest.raises(vhd.ChainLoop):
        vhd.snapshot(c, tmp_path / "d.vhd")
        vhd.set_parent(c, "d.vhd")


def test_reset_leaf(tmp_path):
    a, b = tmp_path / "a.vhd", tmp_path / "b.vhd"
    vhd.create_dynamic(a, 4 * MiB)
    with vhd.open_chain(a, writable=True) as ch:
        ch.write(0, rnd(1, 4 * MiB))
    vhd.snapshot(a, b)
    with vhd.open_chain(b, writable=True) as ch:
        ch.write(0, rnd(2, 4 * MiB))
    vhd.reset(b)
    assert full_read(b) == rnd(1, 4 * MiB)
    assert vhd.allocated_blocks(b) == 0 and os.path.getsize(b) < 16 * KiB
    assert vhd.check(b).ok


def test_import_export_stream_clone(tmp_path):
    raw = tmp_path / "in.raw"
    data = bytearray(10 * MiB + 1000)
    data[0 : 2 * MiB] = rnd(1, 2 * MiB)
    data[6 * MiB + 5 : 6 * MiB + 9] = b"abcd"
    data[-10:] = b"0123456789"
    write_raw(raw, bytes(data))
    out = tmp_path / "o.vhd"
    inf = vhd.import_raw(raw, out)
    assert inf.allocated_blocks == 3  # zero blocks skipped
    assert inf.virtual_size == C.pad512(len(data))
    back = tmp_path / "back.raw"
    vhd.export_raw(out, back)
    assert back.read_bytes() == bytes(data) + bytes(C.pad512(len(data)) - len(data))
    child = tmp_path / "child.vhd"
    vhd.snapshot(out, child)
    with vhd.open_chain(child, writable=True) as ch:
        ch.write(4 * MiB, b"x" * 3000)
        view = ch.read(0, ch.size)
    chunks = list(vhd.stream_vhd(child))
    with vhd.open_chain(child) as ch:
        assert sum(map(len, chunks)) == vhd.stream_length(ch)
    flat = tmp_path / "flat.vhd"
    flat.write_bytes(b"".join(chunks))
    assert full_read(flat) == view and vhd.check(flat).ok
    cl = tmp_path / "clone.vhd"
    vhd.clone(child, cl)
    assert full_read(cl) == view and vhd.info(cl).disk_type == "dynamic"


def test_fixed_import(tmp_path):
    raw = tmp_path / "in.raw"
    write_raw(raw, rnd(5, 3 * MiB))
    out = tmp_path / "f.vhd"
    vhd.import_raw(raw, out, fixed=True)
    assert vhd.info(out).disk_type == "fixed"
    assert full_read(out) == rnd(5, 3 * MiB)


def test_read_only_views(tmp_path):
    p = tmp_path / "a.vhd"
    vhd.create_dynamic(p, 4 * MiB)
    with vhd.open_chain(p) as c:
        with pytest.raises(vhd.ReadOnlyImage):
            c.write(0, b"x")
        with pytest.raises(vhd.OutOfRange):
            c.read(4 * MiB - 1, 2)


def test_unsafe_parent_locators(tmp_path):
    sub = tmp_path / "sr"
    sub.mkdir()
    (tmp_path / "secret.vhd").write_bytes(b"")
    vhd.create_dynamic(sub / "p.vhd", 4 * MiB)
    for bad in ("../secret.vhd", "/etc/passwd", "C:\\x\\p.vhd", "a/../../secret.vhd"):
        with pytest.raises(vhd.UnsafeParentPath):
            vhd.set_parent(sub / "p.vhd", bad)
    # Child whose locators we forge to an absolute path: refused, never opened.
    vhd.snapshot(sub / "p.vhd", sub / "c.vhd")
    raw = bytearray((sub / "c.vhd").read_bytes())
    hdr = vhd.open_image(sub / "c.vhd")
    locs = hdr.header.locators
    hdr.close()
    for loc in locs:
        if loc.code == C.PLAT_MACX:
            payload = b"file:///etc/p.vhd"
        elif loc.code:
            payload = "C:\\etc\\p.vhd".encode("utf-16-le")
        else:
            continue
        raw[loc.data_offset : loc.data_offset + loc.space_bytes] = payload.ljust(loc.space_bytes, b"\0")
    name_off = 512 + 64
    raw[name_off : name_off + 512] = "/etc/p.vhd".encode("utf-16-be").ljust(512, b"\0")
    from smapi.vhd.geometry import checksum

    raw[512 + 36 : 512 + 40] = b"\0\0\0\0"
    struct.pack_into(">I", raw, 512 + 36, checksum(bytes(raw[512:1536]), 36))
    (sub / "c.vhd").write_bytes(bytes(raw))
    with pytest.raises(vhd.UnsafeParentPath):
        vhd.open_chain(sub / "c.vhd")


def test_parent_symlink_escape(tmp_path):
    sr, outside = tmp_path / "sr", tmp_path / "out"
    sr.mkdir()
    outside.mkdir()
    vhd.create_dynamic(outside / "p.vhd", 4 * MiB)
    os.symlink(outside / "p.vhd", sr / "p.vhd")
    with pytest.raises(vhd.UnsafeParentPath):
        vhd.DirectoryResolver(sr).open_parent("p.vhd")


def test_missing_parent_and_uuid_mismatch(tmp_path):
    a, b = tmp_path / "a.vhd", tmp_path / "b.vhd"
    vhd.create_dynamic(a, 4 * MiB)
    vhd.snapshot(a, b)
    os.unlink(a)
    with pytest.raises(vhd.ParentNotFound):
        vhd.open_chain(b)
    vhd.create_dynamic(a, 4 * MiB)
    with pytest.raises(vhd.ParentMismatch):
        vhd.open_chain(b)
    rep = vhd.check(b)
    assert not rep.ok and any("parent" in e for e in rep.errors)


def test_check_and_repair_footer(tmp_path):
    p = tmp_path / "a.vhd"
    vhd.create_dynamic(p, 8 * MiB)
    with vhd.open_chain(p, writable=True) as c:
        c.write(0, rnd(3, 5 * MiB))
    good = p.read_bytes()
    bad = bytearray(good)
    bad[-512:] = b"\xc7" * 512  # tapdisk's killed footer
    p.write_bytes(bytes(bad) + b"torn tail garbage" * 100)
    assert full_read(p)[: 5 * MiB] == rnd(3, 5 * MiB)  # backup footer is used
    rep = vhd.check(p)
    assert not rep.ok and any(e.startswith("footer") for e in rep.errors)
    actions = vhd.repair(p)
    assert actions
    assert p.read_bytes() == good
    assert vhd.check(p).ok and vhd.repair(p) == []


def test_big_sizes_metadata_only(tmp_path):
    p = tmp_path / "big.vhd"
    vhd.create_dynamic(p, 2040 * GiB)
    assert os.path.getsize(p) < 5 * MiB
    c = tmp_path / "bigc.vhd"
    vhd.snapshot(p, c)
    with vhd.open_chain(c, writable=True) as ch:
        ch.write(2040 * GiB - 4096, b"end!" * 1024)
        assert ch.read(2040 * GiB - 4096, 8) == b"end!end!"
    with pytest.raises(vhd.InvalidArgument):
        vhd.create_dynamic(tmp_path / "toobig.vhd", 2041 * GiB)


def test_memory_backing_api():
    m = vhd.MemoryBacking()
    vhd.create_dynamic(m, 4 * MiB, block_size=4 * KiB)
    img = vhd.open_image(m, writable=True)
    from smapi.vhd.chain import Chain

    ch = Chain([img])
    ch.write(5000, b"abc")
    assert ch.read(4999, 5) == b"\0abc\0"
    assert img.allocated_blocks() == 1


@pytest.mark.parametrize("creator,becomes_tap", [(b"qemu", True), (b"vpc ", True), (b"xyz!", True),
                                                 (b"win ", False), (b"qem2", False), (b"tap\0", False)])
def test_resize_sets_a_creator_that_sizes_by_current_size(tmp_path, creator, becomes_tap):
    """qemu takes the size of "qemu", "vpc " and unknown creators from the CHS geometry (ref. §3): after a resize
    to a size the geometry cannot hold, such an image gets blktap's identity; the others keep theirs."""
    p = tmp_path / "c.vhd"
    version = C.CREATOR_VERSION if creator == C.CREATOR_APP else 0x00050003
    vhd.create_dynamic(p, 64 * MiB)
    with vhd.open_image(p, writable=True) as img:
        img.update_footer(creator_app=creator, creator_version=version, creator_os=0x5769326B)
    vhd.resize(p, 100 * MiB)
    f = vhd.open_image(p).footer
    assert f.current_size == 100 * MiB
    if becomes_tap:
        assert (f.creator_app, f.creator_version, f.creator_os) == (C.CREATOR_APP, C.CREATOR_VERSION, C.CREATOR_OS)
    else:
        assert (f.creator_app, f.creator_version) == (creator, version)
    assert vhd.check(p).ok
