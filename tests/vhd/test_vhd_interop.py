"""Interoperability with real tools: qemu-img (fixed/dynamic both ways) and libvhdi (differencing chains).

Each test skips with a reason when its tool is missing; nothing is faked.
"""

import json
import os
import random
import shutil
import subprocess
import sys

import pytest

import smapi.vhd as vhd
from smapi.vhd.constants import KiB, MiB

QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
VHDIINFO = shutil.which("vhdiinfo")
needs_qemu = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not installed (Debian qemu-utils)")
needs_qemu_io = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io not installed (Debian qemu-utils)")
needs_vhdiinfo = pytest.mark.skipif(VHDIINFO is None, reason="vhdiinfo not installed (Debian libvhdi-utils)")


def _system_pyvhdi() -> str:
    """A Python interpreter that can import pyvhdi (Debian python3-libvhdi targets the system python3)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and os.path.exists(exe) and subprocess.run([exe, "-c", "import pyvhdi"],
                                                          capture_output=True).returncode == 0:
            return exe
    return ""


PYVHDI = _system_pyvhdi()
needs_pyvhdi = pytest.mark.skipif(not PYVHDI, reason="pyvhdi not importable (Debian python3-libvhdi)")


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def pattern(size: int, seed: int, zero_every: int = 3, unit: int = 2 * MiB) -> bytes:
    """Random data with every ``zero_every``-th unit left zero (exercises zero skipping)."""
    r = random.Random(seed)
    out = bytearray(size)
    for i, off in enumerate(range(0, size, unit)):
        if i % zero_every != 1:
            n = min(unit, size - off)
            out[off : off + n] = r.randbytes(n)
    return bytes(out)


def qemu_virtual_size(path) -> int:
    return json.loads(run(QEMU_IMG, "info", "--output=json", "-f", "vpc", str(path)))["virtual-size"]


@needs_qemu
@pytest.mark.parametrize("fixed", [False, True])
def test_qemu_reads_ours(tmp_path, fixed):
    raw = tmp_path / "in.raw"
    raw.write_bytes(pattern(20 * MiB, 1))
    ours = tmp_path / "ours.vhd"
    vhd.import_raw(raw, ours, fixed=fixed)
    assert qemu_virtual_size(ours) == 20 * MiB
    out = run(QEMU_IMG, "compare", "-f", "vpc", "-F", "raw", str(ours), str(raw))
    assert "identical" in out


@needs_qemu
def test_qemu_reads_our_writes_and_stream(tmp_path):
    p = tmp_path / "w.vhd"
    vhd.create_dynamic(p, 12 * MiB)
    model = bytearray(12 * MiB)
    r = random.Random(7)
    with vhd.open_chain(p, writable=True) as c:
        for _ in range(30):
            off = r.randrange(12 * MiB - 1)
            n = min(r.randrange(1, 600 * KiB), 12 * MiB - off)
            d = r.randbytes(n)
            c.write(off, d)
            model[off : off + n] = d
    raw = tmp_path / "model.raw"
    raw.write_bytes(bytes(model))
    assert "identical" in run(QEMU_IMG, "compare", "-f", "vpc", "-F", "raw", str(p), str(raw))
    # A flattened stream of a differencing chain is a plain dynamic VHD qemu reads right.
    child = tmp_path / "child.vhd"
    vhd.snapshot(p, child)
    with vhd.open_chain(child, writable=True) as c:
        c.write(5 * MiB + 3, b"child data" * 1000)
        model[5 * MiB + 3 : 5 * MiB + 3 + 10000] = b"child data" * 1000
    flat = tmp_path / "flat.vhd"
    with open(flat, "wb") as f:
        for chunk in vhd.stream_vhd(child):
            f.write(chunk)
    raw.write_bytes(bytes(model))
    assert "identical" in run(QEMU_IMG, "compare", "-f", "vpc", "-F", "raw", str(flat), str(raw))


@needs_qemu
@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
@pytest.mark.parametrize("force_size", [False, True])
def test_we_read_qemu_images(tmp_path, subformat, force_size):
    size = 100 * MiB
    data = pattern(size, 2, zero_every=4)
    raw = tmp_path / "in.raw"
    raw.write_bytes(data)
    out = tmp_path / "q.vhd"
    opts = f"subformat={subformat}" + (",force_size=on" if force_size else "")
    run(QEMU_IMG, "convert", "-f", "raw", "-O", "vpc", "-o", opts, str(raw), str(out))
    qsize = qemu_virtual_size(out)
    inf = vhd.info(out)
    assert inf.virtual_size == qsize  # the size qemu gives the image
    assert qsize == (size if force_size else 104865792)  # CHS round-up without force_size (ref. §3)
    with vhd.open_chain(out) as c:
        got = c.read(0, c.size)
    assert got[:size] == data and got[size:] == bytes(qsize - size)
    rep = vhd.check(out)
    assert rep.ok, rep.errors
    # And we can write into qemu's layout (unaligned blocks, no batmap), qemu still agrees.
    with vhd.open_chain(out, writable=True) as c:
        c.write(3 * MiB + 5, b"written by smapi" * 300)
        full = c.read(0, c.size)
    back = tmp_path / "back.raw"
    back.write_bytes(full)
    assert "identical" in run(QEMU_IMG, "compare", "-f", "vpc", "-F", "raw", str(out), str(back))


@needs_qemu
@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
def test_qemu_reads_the_size_of_a_resized_qemu_image(tmp_path, subformat):
    """qemu sizes images of creator "qemu" by their CHS geometry, which cannot hold most sizes exactly: a resize
    that kept the creator made qemu read another size than the one written. The resized image carries our (tap)
    identity instead, and qemu reads the new size and the data."""
    p = tmp_path / "q.vhd"
    run(QEMU_IMG, "create", "-q", "-f", "vpc", "-o", f"subformat={subformat}", str(p), "100M")
    assert vhd.open_image(p).footer.creator_app == b"qemu"
    with vhd.open_chain(p, writable=True) as c:
        c.write(MiB, b"before the resize" * 100)
    new = vhd.resize(p, 200 * MiB)
    assert new == 200 * MiB
    assert qemu_virtual_size(p) == new == vhd.info(p).virtual_size
    with vhd.open_chain(p) as c:
        full = c.read(0, c.size)
    assert full[MiB : MiB + 1700] == b"before the resize" * 100
    back = tmp_path / "back.raw"
    back.write_bytes(full)
    assert "identical" in run(QEMU_IMG, "compare", "-f", "vpc", "-F", "raw", str(p), str(back))
    assert vhd.check(p).ok


@needs_qemu
@needs_qemu_io
def test_we_read_qemu_io_writes(tmp_path):
    p = tmp_path / "q.vhd"
    run(QEMU_IMG, "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(p), "16M")
    for off, pat in ((0, 0x11), (3 * MiB + 512, 0x22), (9 * MiB, 0x33)):
        run(QEMU_IO, "-f", "vpc", "-c", f"write -P {pat} {off} 70k", str(p))
    raw = tmp_path / "q.raw"
    run(QEMU_IMG, "convert", "-f", "vpc", "-O", "raw", str(p), str(raw))
    with vhd.open_chain(p) as c:
        assert c.read(0, c.size) == raw.read_bytes()


def _aligned_chain(tmp_path, depth: int, size: int = 16 * MiB):
    """A chain whose writes are 4 KiB aligned (libvhdi's partial-byte bitmap bug, ref. §4)."""
    r = random.Random(depth)
    names = []
    model = bytearray(size)
    prev = None
    for d in range(depth):
        p = tmp_path / f"l{d}.vhd"
        if prev is None:
            vhd.create_dynamic(p, size)
        else:
            vhd.snapshot(prev, p)
        with vhd.open_chain(p, writable=True) as c:
            for _ in range(6):
                off = r.randrange(0, size // 4096) * 4096
                n = min(r.randrange(1, 300) * 4096, size - off)
                buf = r.randbytes(n)
                c.write(off, buf)
                model[off : off + n] = buf
        names.append(p)
        prev = p
    return names, bytes(model)


@needs_vhdiinfo
def test_vhdiinfo_reads_our_differencing(tmp_path):
    names, _ = _aligned_chain(tmp_path, 2)
    out = run(VHDIINFO, str(names[-1]))
    parent = vhd.info(names[0])
    assert "Differential" in out
    assert parent.uuid in out
    assert "l0.vhd" in out
    assert "16 MiB (16777216 bytes)" in out
    assert "Dynamic" in run(VHDIINFO, str(names[0]))


@needs_pyvhdi
@pytest.mark.parametrize("depth", [2, 5])
def test_libvhdi_reads_our_chain(tmp_path, depth):
    names, model = _aligned_chain(tmp_path, depth)
    script = (
        "import sys, pyvhdi\n"
        "files = []\n"
        "for p in sys.argv[1:]:\n"
        "    f = pyvhdi.file(); f.open(p)\n"
        "    if files: f.set_parent(files[-1])\n"
        "    files.append(f)\n"
        "leaf = files[-1]\n"
        "sys.stdout.buffer.write(leaf.read_buffer_at_offset(leaf.get_media_size(), 0))\n"
    )
    got = subprocess.run([PYVHDI, "-c", script, *map(str, names)], check=True, capture_output=True).stdout
    assert got == model
    with vhd.open_chain(names[-1]) as c:
        assert c.read(0, c.size) == model
