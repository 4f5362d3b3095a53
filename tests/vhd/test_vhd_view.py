"""The one VHD view (smapi.vhd.view) and the one stream reader (smapi.vhd.receive), against a bytearray model.

Random access must give the same bytes as the whole stream; the file it describes must open in our own reader as
the chain's content; a differencing view over a base view must open as a chain; the receiver must rebuild the disk
from any of them, fed in arbitrary pieces. (qemu-img and libvhdi read the same bytes in test_vhd_interop.py and
in tests/transfer.)
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vhd_testlib import DictResolver, MemChain, rand_bytes

import smapi.vhd as vhd
from smapi.vhd import MemoryBacking, VhdImage
from smapi.vhd.chain import build_chain
from smapi.vhd.constants import DISK_DYNAMIC, KiB

SIZE = 96 * KiB + 1536  # a partial last block
BS = 8 * KiB

writes = st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 20 * KiB), st.integers(0, 255)),
                  min_size=1, max_size=8)


def _chain_with(ops, snapshot_every: int = 3):
    mc = MemChain(SIZE, BS)
    model = bytearray(SIZE)
    for i, (off, n, fill) in enumerate(ops):
        n = min(n, SIZE - off)
        data = bytes([fill]) * n
        mc.chain.write(off, data)
        model[off : off + n] = data
        if i % snapshot_every == snapshot_every - 1:
            mc.snapshot()
    mc.chain.flush()
    return mc, model


def _receive(blob: bytes, size: int, cut: int, into: "bytearray | None" = None) -> "tuple[bytearray, bool]":
    out = into if into is not None else bytearray(size)

    def put(off: int, data: bytes) -> None:
        out[off : off + len(data)] = data

    rx = vhd.VhdReceiver(size, put, length=len(blob))
    for i in range(0, len(blob), cut):
        rx.feed(blob[i : i + cut])
    rx.finish()
    return out, rx.is_differencing


@settings(max_examples=40, deadline=None)
@given(writes, st.lists(st.tuples(st.integers(0, 200 * KiB), st.integers(0, 70 * KiB)), max_size=6),
       st.integers(1, 9000))
def test_view_ranges_file_and_receiver_agree_with_the_model(ops, ranges, cut):
    mc, model = _chain_with(ops)
    view = vhd.chain_view(mc.chain)
    whole = b"".join(view.pieces())
    assert len(whole) == view.length == vhd.stream_length(mc.chain)
    assert b"".join(vhd.stream_vhd(mc.chain))[512:-512] == whole[512:-512]  # only the footer copy's uuid differs
    for start, n in ranges:
        assert view.read(start, n) == whole[start : start + n]
        assert b"".join(view.pieces(start, start + n)) == whole[start : start + n]
    img = VhdImage.open(MemoryBacking(whole, writable=False))
    assert img.disk_type == DISK_DYNAMIC and img.virtual_size == SIZE
    assert build_chain(img, None).read(0, SIZE) == bytes(model)
    assert vhd.check(MemoryBacking(whole, writable=False)).ok
    got, diff = _receive(whole, SIZE, cut)
    assert got == model and not diff


@settings(max_examples=25, deadline=None)
@given(writes, writes)
def test_differencing_view_over_a_base_view_opens_as_a_chain(base_ops, delta_ops):
    base, base_model = _chain_with(base_ops)
    mc, model = _chain_with(base_ops)  # the same content, then changes
    mc.snapshot()
    changed = bytearray(-(-SIZE // BS))
    for off, n, fill in delta_ops:
        n = min(n, SIZE - off)
        mc.chain.write(off, bytes([fill]) * n)
        model[off : off + n] = bytes([fill]) * n
        changed[off // BS : (off + n - 1) // BS + 1] = b"\x01" * ((off + n - 1) // BS - off // BS + 1)
    mc.chain.flush()
    base_uid = b"B" * 16
    base_file = b"".join(vhd.chain_view(base.chain, uid=base_uid).pieces())
    delta = vhd.build_view(SIZE, changed, mc.chain.read, uid=b"D" * 16, block_size=BS,
                           parent=(base_uid, "base.vhd"))
    delta_file = delta.read(0, delta.length)
    res = DictResolver()
    res.stores["base.vhd"] = MemoryBacking(base_file, writable=False, name="base.vhd")
    child = VhdImage.open(MemoryBacking(delta_file, writable=False, name="delta.vhd"))
    assert child.is_differencing and child.parent_uuid == base_uid
    assert build_chain(child, res).read(0, SIZE) == bytes(model)
    # Applying the delta onto a copy of the base gives the new content; unmarked sectors are left alone.
    restored, _ = _receive(base_file, SIZE, 4096)
    assert restored == base_model
    restored, diff = _receive(delta_file, SIZE, 777, into=restored)
    assert diff and restored == model


def test_receiver_refusals_are_typed():
    mc, _model = _chain_with([(0, 10 * KiB, 1), (50 * KiB, 30 * KiB, 2)])
    whole = vhd.chain_view(mc.chain).read(0, 1 << 30)
    with pytest.raises(vhd.IncompleteIO):  # the BAT announces more than the stream holds
        vhd.VhdReceiver(SIZE, lambda o, d: None, length=len(whole) // 2).feed(whole)
    rx = vhd.VhdReceiver(SIZE, lambda o, d: None)
    rx.feed(whole[: len(whole) // 2])
    with pytest.raises(vhd.IncompleteIO):
        rx.finish()
    with pytest.raises(vhd.OutOfRange):  # blocks beyond a smaller disk
        vhd.VhdReceiver(40 * KiB, lambda o, d: None).feed(whole)
    fixed = MemoryBacking(name="f.vhd")
    vhd.create_fixed(fixed, 64 * KiB)
    with pytest.raises(vhd.CorruptImage):  # a fixed VHD has no footer copy at 0
        vhd.VhdReceiver(SIZE, lambda o, d: None).feed(bytes(fixed.buf))
    footer = vhd.VhdImage.open(MemoryBacking(bytes(fixed.buf))).footer
    with pytest.raises(vhd.UnsupportedImage):  # a fixed footer in front
        vhd.VhdReceiver(SIZE, lambda o, d: None).feed(footer.pack())
    with pytest.raises(vhd.CorruptImage):
        vhd.stream_footer(rand_bytes(5, 512))
