"""A hidden-chain coalesce under a VDI that is being served must not leave its server on the removed image.

The collector merges a hidden base C into its parent P, re-points C's children at P and removes C's volume. A
server of a leaf below C has C open: on LVM it reads C's extents through the PV map, and once `lvremove` frees them
the next `lvcreate` may hand them to another VDI. Its reads of sectors that live in C would then return the other
VDI's bytes. Every acknowledged write must still read back through the running datapath after the merge, with
C's old extents overwritten by a new VDI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.lvm.conftest import make_sr
from tests.lvm.test_datapath import attach, qemu_io, release

MiB = 1 << 20
SIZE = 16 * MiB

pytestmark = pytest.mark.skipif(shutil.which("qemu-io") is None or shutil.which("nbdkit") is None,
                                reason="needs qemu-io (qemu-utils) and nbdkit")


def test_served_leaf_reads_right_after_its_hidden_chain_is_merged(loop: str, tmp_path: Path) -> None:
    sr = make_sr([loop], "thick")
    vdi = sr.vdi(SIZE)["vdi"]
    writes = []  # (offset, length, pattern) in the order they were acknowledged

    def write(uri_or_vdi: str, off: int, n: int, pattern: int) -> None:
        qemu_io(uri_or_vdi, f"write -P {pattern} {off} {n}", "flush")
        writes.append((off, n, pattern))

    # Three layers of data: in the bottom base, in the middle base, and in the leaf while it is served.
    uri = attach(sr, vdi)["xenstore_data"]["nbd-uri"]
    write(uri, 0, 4 * MiB, 0x11)
    release(sr, vdi)
    first = sr.snapshot(vdi)["vdi"]
    uri = attach(sr, vdi)["xenstore_data"]["nbd-uri"]
    write(uri, 4 * MiB, 4 * MiB, 0x22)
    release(sr, vdi)
    second = sr.snapshot(vdi)["vdi"]
    uri = attach(sr, vdi)["xenstore_data"]["nbd-uri"]
    write(uri, 8 * MiB, 1 * MiB, 0x33)

    bases_before = {v: r for v, r in sr.substrate().load_document("sr")["vdis"].items() if r.get("hidden")}
    assert len(bases_before) == 2
    # Destroying both snapshots leaves the chain leaf -> middle base -> bottom base with single children:
    # the collector (SMAPI_GC=sync) merges the middle base into the bottom one while the leaf is served.
    sr.v("VDI.destroy", vdi=first)
    sr.v("VDI.destroy", vdi=second)
    after = {v: r for v, r in sr.substrate().load_document("sr")["vdis"].items() if r.get("hidden")}
    assert len(after) == 1, "the collector merged the hidden chain"
    gone = set(bases_before) - set(after)
    assert gone
    # Whatever extents the merged base had now belong to new VDIs full of another pattern: one-extent raw VDIs
    # (lvm would give one large LV a contiguous run elsewhere) until the freed extents are surely reused.
    for i in range(6):
        filler = sr.vdi(4 * MiB, sm_config={"type": "raw"})["vdi"]
        fill_uri = attach(sr, filler, dp=f"fill{i}")["xenstore_data"]["nbd-uri"]
        qemu_io(fill_uri, f"write -P 0xee 0 {4 * MiB}", "flush")
        release(sr, filler, dp=f"fill{i}")
    # The leaf's server (running all along, or restarted on the new chain) still reads every write.
    for off, n, pattern in writes:
        qemu_io(uri, f"read -P {pattern} {off} {n}", readonly=True)
    release(sr, vdi)
