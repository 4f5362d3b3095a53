"""Hostile input: mutated footers, headers, BATs, batmaps, bitmaps and locators.

Every malformed image must give a typed :class:`VhdError` (format errors naming a field), never another exception,
never a read outside the file, never a read sized by a forged field beyond the file, never a hang.
"""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vhd_testlib import DictResolver, rand_bytes

import smapi.vhd as vhd
from smapi.vhd import MemoryBacking, VhdError, VhdFormatError, VhdImage
from smapi.vhd.chain import build_chain
from smapi.vhd.check import check_image
from smapi.vhd.constants import KiB
from smapi.vhd.create import create_child_on, create_sparse_on
from smapi.vhd.geometry import checksum
from smapi.vhd.meta import set_parent_image
from smapi.vhd.scan import scan_file

# The most one write may grow a store: two 4 KiB blocks and their bitmaps, plus a footer, well rounded. A forged BAT
# entry once made the library allocate the next block terabytes out (1 TiB written into the file).
GROWTH_LIMIT = 64 * KiB


class StrictBacking(MemoryBacking):
    """Fails the test (not with a VhdError) on any read reaching outside the store, and on any write or resize that
    would grow it by more than :data:`GROWTH_LIMIT`."""

    def _check_growth(self, end):
        assert end <= len(self.buf) + GROWTH_LIMIT, f"store of {len(self.buf)} bytes grown to {end}"

    def pwrite(self, data, offset):
        self._check_growth(offset + len(data))
        return super().pwrite(data, offset)

    def pwritev(self, buffers, offset):
        self._check_growth(offset + sum(len(b) for b in buffers))
        return super().pwritev(buffers, offset)

    def resize(self, size):
        self._check_growth(size)
        return super().resize(size)

    def pread(self, length, offset):
        assert offset >= 0 and offset + length <= len(self.buf), f"read {length}@{offset} outside {len(self.buf)}"
        return super().pread(length, offset)

    def readinto(self, buf, offset):
        n = len(buf)
        assert offset >= 0 and offset + n <= len(self.buf), f"read {n}@{offset} outside {len(self.buf)}"
        return super().readinto(buf, offset)


def _build() -> "tuple[bytes, bytes]":
    """A parent and a differencing child with full and partial blocks (4 KiB blocks keep the BAT busy)."""
    res = DictResolver()
    p = res.stores.setdefault("p.vhd", MemoryBacking(name="p.vhd"))
    create_sparse_on(p, 96 * KiB, block_size=4 * KiB)
    img = VhdImage.open(p, writable=True)
    img.write_at(0, rand_bytes(1, 40 * KiB))
    img.commit()
    c = MemoryBacking(name="c.vhd")
    create_child_on(c, img, "p.vhd")
    child = VhdImage.open(c, writable=True)
    child.write_at(8 * KiB, rand_bytes(2, 4 * KiB))
    child.write_at(20 * KiB + 1024, rand_bytes(3, 1536))
    child.write_at(60 * KiB, rand_bytes(4, 9 * KiB))
    child.commit()
    return bytes(p.buf), bytes(c.buf)


PARENT, CHILD = _build()
_H = 512  # header offset


def _regions(raw: bytes):
    """Byte ranges worth mutating: footers, header fields, BAT, batmap, locators, bitmaps."""
    table = struct.unpack_from(">Q", raw, _H + 16)[0]
    entries = struct.unpack_from(">I", raw, _H + 28)[0]
    regs = [(0, 512), (len(raw) - 512, len(raw)), (_H, _H + 80), (_H + 576, _H + 768),
            (table, table + entries * 4), (table + ((entries * 4 + 511) // 512) * 512, 0)]
    bm_hdr = regs[-1][0]
    regs[-1] = (bm_hdr, bm_hdr + 1024)
    for i in range(8):
        code, _space, length, _r, off = struct.unpack_from(">IIIIQ", raw, _H + 576 + 24 * i)
        if code:
            regs.append((off, off + max(length, 1)))
    for i in range(entries):
        e = struct.unpack_from(">I", raw, table + 4 * i)[0]
        if e != 0xFFFFFFFF:
            regs.append((e * 512, e * 512 + 512))
    return regs


def _fix_checksums(raw: bytearray) -> None:
    for off in (0, len(raw) - 512):
        if raw[off : off + 8] == b"conectix":
            raw[off + 64 : off + 68] = b"\0\0\0\0"
            struct.pack_into(">I", raw, off + 64, checksum(bytes(raw[off : off + 512])))
    if raw[_H : _H + 8] == b"cxsparse":
        raw[_H + 36 : _H + 40] = b"\0\0\0\0"
        struct.pack_into(">I", raw, _H + 36, checksum(bytes(raw[_H : _H + 1024])))


INTERESTING = [0, 1, 0x1FF, 0x200, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


@st.composite
def mutation(draw, raw: bytes):
    regs = [r for r in _regions(raw) if r[0] < r[1] <= len(raw)]
    out = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        lo, hi = draw(st.sampled_from(regs))
        pos = draw(st.integers(lo, hi - 1))
        kind = draw(st.sampled_from(["byte", "u32", "u64"]))
        if kind == "byte":
            out[pos] = draw(st.integers(0, 255))
        elif kind == "u32" and pos + 4 <= len(out):
            struct.pack_into(">I", out, pos, draw(st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1)))
        elif pos + 8 <= len(out):
            struct.pack_into(">Q", out, pos, draw(st.sampled_from(INTERESTING) | st.integers(0, 2**64 - 1)))
    if draw(st.booleans()):
        _fix_checksums(out)
    if draw(st.integers(0, 9)) == 0:
        del out[draw(st.integers(0, len(out) - 1)) :]
    return bytes(out)


def exercise(child: bytes, parent: bytes, tmp_path=None) -> None:
    res = DictResolver()
    res.stores["p.vhd"] = StrictBacking(parent, writable=False, name="p.vhd")
    store = StrictBacking(child, writable=True, name="c.vhd")
    try:
        img = VhdImage.open(store, writable=True)
        chain = build_chain(img, res)
        chain.read(0, chain.size)
        check_image(img, resolver=res)
        chain.write(chain.size // 3, b"fuzz" * 300)
        chain.write(max(0, chain.size - 700), b"end!" * 175)  # the last sector, partial when the size is odd
        chain.read(0, chain.size)
    except VhdFormatError as e:
        assert e.field, e
    except VhdError:
        pass
    if tmp_path is not None:
        f = tmp_path / "fz.vhd"
        f.write_bytes(child)
        info = scan_file(str(f))  # must never raise
        assert info.error is None or isinstance(info.error, str)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation(CHILD))
def test_fuzz_child(mutated):
    exercise(mutated, PARENT)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation(PARENT))
def test_fuzz_parent(mutated):
    exercise(CHILD, mutated)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mutation(CHILD))
def test_fuzz_scan(tmp_path, mutated):
    exercise(mutated, PARENT, tmp_path)


def _table(raw: bytes) -> "tuple[int, int]":
    return struct.unpack_from(">Q", raw, _H + 16)[0], struct.unpack_from(">I", raw, _H + 28)[0]


@st.composite
def bat_past_eof(draw, raw: bytes):
    """Some BAT entries pointing at or past the end of the file (a forged or cut-off image)."""
    table, entries = _table(raw)
    out = bytearray(raw)
    end_sector = len(raw) // 512
    for _ in range(draw(st.integers(1, 3))):
        blk = draw(st.integers(0, entries - 1))
        entry = draw(st.sampled_from([end_sector - 1, end_sector, end_sector + 1, 0x7FFFFFF0, 0x80000000,
                                      0xFFFFFFFE]) | st.integers(end_sector - 8, 0xFFFFFFFE))
        struct.pack_into(">I", out, table + 4 * blk, entry)
    if draw(st.booleans()):
        del out[draw(st.integers(len(out) - 9000, len(out) - 1)) :]  # and maybe a cut-off tail
    return bytes(out)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bat_past_eof(CHILD))
def test_fuzz_bat_entries_past_eof(mutated):
    """Writes (before any read), reads and check give typed errors; nothing is written far past the end
    (StrictBacking); repair then gives an image that checks clean."""
    exercise(mutated, PARENT)
    res = DictResolver()
    res.stores["p.vhd"] = StrictBacking(PARENT, writable=False, name="p.vhd")
    store = StrictBacking(mutated, writable=True, name="c.vhd")
    try:
        chain = build_chain(VhdImage.open(store, writable=True), res)
    except VhdFormatError:
        return
    for off in range(0, chain.size, 16 * KiB):  # into unallocated blocks too: each one is a new allocation
        try:
            chain.write(off, b"w" * 512)
        except VhdFormatError as e:
            assert e.field.startswith("BAT["), e
    store = StrictBacking(mutated, writable=True, name="c.vhd")
    vhd.repair(store)
    assert check_image(VhdImage.open(store), resolver=res).ok


def _odd_sized(size: int, fixed: bool = False) -> MemoryBacking:
    """A dynamic (or fixed) image whose virtual size is not a multiple of 512, as pyvhd writes them."""
    store = MemoryBacking(name="odd.vhd")
    if fixed:
        vhd.create_fixed(store, size)
    else:
        create_sparse_on(store, size, block_size=4 * KiB, round_to_block=False)
    raw = store.buf
    for off in (0, len(raw) - 512):
        if raw[off : off + 8] == b"conectix":
            struct.pack_into(">QQ", raw, off + 40, size, size)  # original and current size
    _fix_checksums(raw)
    img = VhdImage.open(store)
    assert img.virtual_size == size
    return store


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 20 * KiB // 512).map(lambda s: s * 512 - 1) | st.integers(1, 20 * KiB),
       st.booleans(),
       st.lists(st.tuples(st.integers(0, 20 * KiB), st.integers(1, 3000), st.integers(0, 255)), max_size=6))
def test_fuzz_partial_sector_sizes(size, fixed, writes):
    """Any write inside a virtual size that is not a multiple of 512 lands, the last partial sector included, and
    the image reads back like a bytearray model after reopening."""
    store = _odd_sized(size, fixed)
    model = bytearray(size)
    chain = build_chain(VhdImage.open(store, writable=True), None)
    writes = [(size - 1, 1, 7), (max(0, size - 513), min(size, 513), 9)] + writes
    for off, n, fill in writes:
        off = off % size
        n = min(n, size - off)
        chain.write(off, bytes([fill]) * n)
        model[off : off + n] = bytes([fill]) * n
    chain.close()
    img = VhdImage.open(store)
    assert build_chain(img, None).read(0, size) == bytes(model)
    assert img.virtual_size == size
    assert check_image(img).ok, check_image(img).errors


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_random_bytes(blob):
    try:
        VhdImage.open(StrictBacking(blob, writable=False))
    except VhdFormatError as e:
        assert e.field
    except VhdError:
        pass


def _forge_header(raw: bytes, **fields) -> bytes:
    out = bytearray(raw)
    layout = {"table_offset": (16, ">Q"), "max_table_entries": (28, ">I"), "block_size": (32, ">I")}
    for k, v in fields.items():
        off, fmt = layout[k]
        struct.pack_into(fmt, out, _H + off, v)
    _fix_checksums(out)
    return bytes(out)


@pytest.mark.parametrize("fields,field", [
    ({"max_table_entries": 0xFFFFFFFF}, "header.max_table_entries"),
    ({"max_table_entries": 1}, "header.max_table_entries"),
    ({"table_offset": 1 << 60}, "header.max_table_entries"),
    ({"block_size": 3 * 4096}, "header.block_size"),
    ({"block_size": 1 << 30}, "header.block_size"),
])
def test_forged_sizes_are_named(fields, field):
    with pytest.raises(VhdFormatError) as ei:
        VhdImage.open(StrictBacking(_forge_header(CHILD, **fields)))
    assert ei.value.field == field


def test_forged_bat_entry_outside_file():
    table = struct.unpack_from(">Q", CHILD, _H + 16)[0]
    raw = bytearray(CHILD)
    struct.pack_into(">I", raw, table + 4 * 2, 0x7FFFFFF0)  # block 2 -> far beyond the end
    img = VhdImage.open(StrictBacking(bytes(raw), writable=False))
    res = DictResolver()
    res.stores["p.vhd"] = StrictBacking(PARENT, writable=False)
    chain = build_chain(img, res)
    with pytest.raises(vhd.CorruptImage) as ei:
        chain.read(0, chain.size)
    assert ei.value.field == "BAT[2]"


def test_bat_entry_past_eof_refuses_writes():
    """A forged entry far past the end must not place the next block (and the footer) there: the library used to
    write 1 TiB into the file. The write is refused, nothing changes, and repair unmaps the entry."""
    table, _entries = _table(CHILD)
    raw = bytearray(CHILD)
    struct.pack_into(">I", raw, table + 4 * 2, 0x80000000)  # block 2 -> 1 TiB
    store = StrictBacking(bytes(raw), writable=True, name="c.vhd")
    before = bytes(store.buf)
    img = VhdImage.open(store, writable=True)
    with pytest.raises(vhd.CorruptImage) as ei:
        img.write_at(80 * KiB, b"x" * 4 * KiB)  # block 20: unallocated, a new block
    assert ei.value.field == "BAT[2]" and "past the end of the file" in str(ei.value)
    img.close()
    assert bytes(store.buf) == before
    actions = vhd.repair(store)
    assert any("unmapped 1 block" in a for a in actions), actions
    res = DictResolver()
    res.stores["p.vhd"] = StrictBacking(PARENT, writable=False)
    assert check_image(VhdImage.open(store), resolver=res).ok


def test_write_to_the_partial_last_sector():
    """pyvhd writes virtual sizes that are not a multiple of 512; the last bytes of such a disk are writable, in a
    dynamic image and in a fixed one (whose footer follows the data directly and must survive)."""
    for fixed in (False, True):
        size = 10 * KiB + 100
        store = _odd_sized(size, fixed)
        chain = build_chain(VhdImage.open(store, writable=True), None)
        chain.write(size - 30, b"t" * 30)
        chain.write(10 * KiB, b"s" * 60)
        chain.close()
        img = VhdImage.open(store, writable=True)
        assert img.primary_ok and img.virtual_size == size
        data = build_chain(img, None).read(0, size)
        assert data[10 * KiB : 10 * KiB + 60] == b"s" * 60 and data[-30:] == b"t" * 30 and data[-40:-30] == bytes(10)
        img.write_at(10 * KiB, b"u" * 512)  # a whole sector at the image level too
        img.close()
        assert build_chain(VhdImage.open(store), None).read(10 * KiB, 100) == b"u" * 100


def test_chain_loop_detected():
    res = DictResolver()
    base = res.stores.setdefault("x.vhd", MemoryBacking(name="x.vhd"))
    create_sparse_on(base, 64 * KiB, block_size=4 * KiB)
    a = res.stores.setdefault("a.vhd", MemoryBacking(name="a.vhd"))
    create_child_on(a, VhdImage.open(base), "x.vhd")
    b = res.stores.setdefault("b.vhd", MemoryBacking(name="b.vhd"))
    create_child_on(b, VhdImage.open(a), "a.vhd")
    # Low-level reparent (no loop check) a -> b: a cycle a <-> b.
    set_parent_image(VhdImage.open(a, writable=True), VhdImage.open(b), "b.vhd")
    with pytest.raises(vhd.ChainLoop):
        build_chain(VhdImage.open(b), res)


def test_deep_forged_chain_stops_at_limit():
    """A resolver that fabricates parents forever must hit ChainTooDeep, not recurse unboundedly."""
    res = DictResolver()
    prev = res.stores.setdefault("n0.vhd", MemoryBacking(name="n0.vhd"))
    create_sparse_on(prev, 8 * KiB, block_size=4 * KiB)
    for i in range(1, 40):
        cur = res.stores.setdefault(f"n{i}.vhd", MemoryBacking(name=f"n{i}.vhd"))
        create_child_on(cur, VhdImage.open(prev), f"n{i - 1}.vhd")
        prev = cur
    with pytest.raises(vhd.ChainTooDeep):
        build_chain(VhdImage.open(prev), res)
