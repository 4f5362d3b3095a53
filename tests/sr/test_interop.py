"""Other tools read what the file SR writes: qemu-img reads an exported VDI exactly as the engine does, and the
SR's own VHD files pass smapi.vhd.check."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from smapi.vhd import stream_vhd
from tests.sr.helpers import FileSR, MiB, pattern

qemu_img = shutil.which("qemu-img")


@pytest.mark.skipif(qemu_img is None, reason="qemu-img is not installed")
@pytest.mark.parametrize("size", [8 * MiB, 5 * MiB + 512])
def test_qemu_img_reads_an_exported_vdi_identically(fsr: FileSR, tmp_path, size: int) -> None:
    vdi = fsr.create(size)
    fsr.write(vdi, 0, pattern("a", MiB))
    fsr.snapshot(vdi)
    fsr.write(vdi, MiB // 2, pattern("b", MiB + 4096))
    fsr.write(vdi, size - 4096, pattern("c", 4096))
    raw = tmp_path / "expected.raw"
    raw.write_bytes(fsr.read_all(vdi))
    exported = tmp_path / "exported.vhd"
    with fsr.driver.open_vdi(fsr.sr, vdi) as h, open(exported, "wb") as out:
        for chunk in stream_vhd(h.chain):
            out.write(chunk)
    result = subprocess.run([qemu_img, "compare", "-f", "vpc", "-F", "raw", str(exported), str(raw)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # the SR's own files are valid VHDs, chain included
    fsr.assert_consistent()


def test_raw_vdis_are_plain_files_of_the_vdi_size(fsr: FileSR) -> None:
    vdi = fsr.create(3 * MiB + 512, sm_config={"type": "raw"})
    fsr.write(vdi, MiB, b"q" * 512)
    url = fsr.v("VDI.get_url", vdi=vdi)
    path = url[len("file://"):]
    assert os.path.getsize(path) == 3 * MiB + 512
    with open(path, "rb") as f:
        f.seek(MiB)
        assert f.read(512) == b"q" * 512
