"""A VHD inside an LV read by other tools: qemu-img through a raw offset/size window on the PV, and libvhdi on a
copy of the whole LV (footer found at the LV's end, the classic LVHD convention)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lvm.helpers import LvmSR

MiB = 1 << 20

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed (qemu-utils)")


def fill(sr: LvmSR, vdi: str, size: int) -> bytes:
    """Scattered data (block-straddling, sector-sized, large), returned as the expected raw image."""
    expect = bytearray(size)
    h = sr.driver.open_vdi(sr.sr, vdi, writable=True)
    try:
        for off, n in ((0, 4096), (2 * MiB - 512, 1024), (5 * MiB + 512, 3 * MiB), (size - 512, 512)):
            data = os.urandom(n)
            h.write(off, data)
            expect[off : off + n] = data
        h.flush()
    finally:
        h.close()
    return bytes(expect)


def export(sr: LvmSR, vdi: str, size: int, path: Path) -> None:
    """smapi's own view of the VDI, as a raw file."""
    h = sr.driver.open_vdi(sr.sr, vdi)
    try:
        with open(path, "wb") as f:
            for off in range(0, size, 4 * MiB):
                f.write(bytes(h.read(off, min(4 * MiB, size - off))))
    finally:
        h.close()


def qemu_target(pv: str, offset: int, size: int) -> str:
    return "json:" + json.dumps({"driver": "vpc", "file": {"driver": "raw", "offset": offset, "size": size,
                                                           "file": {"driver": "host_device", "filename": pv}}})


@pytest.mark.parametrize("provisioning", ["thick", "thin"])
def test_qemu_reads_the_vhd_in_place(provisioning: str, loop: str, tmp_path: Path) -> None:
    from tests.lvm.conftest import make_sr

    sr = make_sr([loop], provisioning)
    size = 24 * MiB
    vdi = sr.vdi(size)["vdi"]
    expect = fill(sr, vdi, size)
    raw = tmp_path / "export.raw"
    export(sr, vdi, size, raw)
    assert raw.read_bytes() == expect
    extents = sr.substrate().access.extents(sr.lv_of(vdi))
    assert len(extents) == 1, "the raw offset/size window needs a single-segment LV"
    (ext,) = extents
    target = qemu_target(ext.pv, ext.pv_offset, ext.length)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", target], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["format"] == "vpc" and info["virtual-size"] >= size
    proc = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", target, str(raw)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("vhdiinfo") is None, reason="vhdiinfo is not installed (libvhdi-utils)")
def test_whole_lv_is_a_valid_vhd_file(loop: str, tmp_path: Path) -> None:
    """The LV is larger than the VHD (thin growth step); a tool reading the LV as a file finds the footer copy
    at its end."""
    from tests.lvm.conftest import make_sr

    sr = make_sr([loop], "thin")
    size = 24 * MiB
    vdi = sr.vdi(size)["vdi"]
    expect = fill(sr, vdi, size)
    lv = sr.lv_of(vdi)
    with sr.substrate()._open_raw(lv, False) as raw:
        copy = raw.pread(raw.size(), 0)
    assert len(copy) > 12 * MiB  # room past the VHD's data
    assert copy[-512:][:8] == b"conectix" and copy[-512:] == copy[:512]
    image = tmp_path / "lv.vhd"
    image.write_bytes(copy)
    out = subprocess.run(["vhdiinfo", str(image)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    raw = tmp_path / "expect.raw"
    raw.write_bytes(expect)
    proc = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", str(image), str(raw)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
