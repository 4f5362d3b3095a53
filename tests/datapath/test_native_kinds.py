"""The native plugin over the other image shapes: a fixed VHD base under a differencing leaf, a raw file, a
read-only export, and the ``@ro`` name next to a writer."""

from __future__ import annotations

import hashlib
import os

import smapi.vhd as vhd
from smapi.datapath.model import ImageSpec
from smapi.datapath.nbd import NbdServer

from .dptestlib import chain_bytes, libnbd
from .nativelib import data_for, require_native, run_rounds, serve

MiB = 1 << 20


def test_fixed_base_and_differencing_leaf(scratch):
    require_native()
    base, leaf = os.path.join(scratch, "base.vhd"), os.path.join(scratch, "leaf.vhd")
    vhd.create_fixed(base, 4 * MiB)
    with vhd.open_chain(base, writable=True) as c:
        c.write(0, b"\x33" * (4 * MiB))
    vhd.snapshot(base, leaf)
    srv, ex = serve(os.path.join(scratch, "run"), leaf)
    try:
        run_rounds(ex.uri, 2, [[["w", 1000, 5000, 1], ["w", 3 * MiB, 4096, 2]], [["f"]]])
    finally:
        srv.stop("vdi")
    disk = chain_bytes(leaf)
    assert disk[1000:6000] == data_for(1, 5000) and disk[3 * MiB : 3 * MiB + 4096] == data_for(2, 4096)
    assert disk[:1000] == b"\x33" * 1000 and disk[6000 : 3 * MiB] == b"\x33" * (3 * MiB - 6000)
    with vhd.open_chain(base) as c:
        assert c.read(0, 4 * MiB) == b"\x33" * (4 * MiB)  # the parent is never written


def test_raw_file_and_readonly_names(scratch):
    require_native()
    raw = os.path.join(scratch, "disk.raw")
    with open(raw, "wb") as f:
        f.truncate(2 * MiB)
    srv = NbdServer(os.path.join(scratch, "run"))
    ex = srv.start("r", ImageSpec("raw", raw), readonly=False)
    try:
        assert ex.engine["engine"] == "native"
        run_rounds(ex.uri, 1, [[["w", 7, 9999, 3]], [["f"]]])
        res = libnbd("h.pwrite(b'x' * 512, 0)", ex.uri.replace("///r?", "///r%40ro?"))
        assert res.returncode != 0  # the @ro name refuses writes
        res = libnbd("print(h.is_read_only())", ex.uri.replace("///r?", "///r%40ro?"))
        assert res.stdout.strip() == "True", res.stderr
        res = libnbd("h.pread(512, 0)", ex.uri.replace("///r?", "///other?"))
        assert res.returncode != 0  # another VDI's name is refused
    finally:
        srv.stop("r")
    with open(raw, "rb") as f:
        data = f.read()
    assert data[:7] == bytes(7) and len(data) == 2 * MiB and data[7:10006] == data_for(3, 9999)


def test_leaf_grown_past_its_parents(scratch):
    """Reads below the leaf go straight to the block's owning parent (an index built at open): a chain whose levels
    end at different places (a parent ending inside a block, a leaf grown past every parent) still reads as the
    Python library reads it, block by block and across the ends."""
    require_native()
    sector = 512
    base, mid, leaf = (os.path.join(scratch, n) for n in ("base.vhd", "mid.vhd", "leaf.vhd"))
    vhd.create_dynamic(base, 3 * MiB)  # ends in the middle of block 1
    with vhd.open_chain(base, writable=True) as c:
        c.write(0, data_for(10, 3 * MiB))
    vhd.snapshot(base, mid)
    with vhd.open_chain(mid, writable=True) as c:
        c.write(MiB, data_for(11, 4096))  # a partial block over the base's full one
    vhd.resize(mid, 5 * MiB)
    vhd.snapshot(mid, leaf)
    vhd.resize(leaf, 8 * MiB)
    with vhd.open_chain(leaf, writable=True) as c:
        c.write(6 * MiB + sector, data_for(12, 3 * sector))
    srv, ex = serve(os.path.join(scratch, "run"), leaf)
    ranges = [(0, 8 * MiB), (MiB - sector, 4096 + 2 * sector), (3 * MiB - 4096, 8192), (4 * MiB, 2 * MiB + 4096),
              (6 * MiB, 4096)]
    try:
        got = run_rounds(ex.uri, 1, [[["r", off, n]] for off, n in ranges])
    finally:
        srv.stop("vdi")
    disk = chain_bytes(leaf)
    assert len(disk) == 8 * MiB and disk[:MiB] == data_for(10, 3 * MiB)[:MiB]
    assert disk[3 * MiB:6 * MiB] == bytes(3 * MiB)  # past the base, nothing maps it
    assert got == [hashlib.sha256(disk[off:off + n]).hexdigest() for off, n in ranges]
