"""Imports into a VDI that already holds data leave it reading exactly like the input.

The formats leave zeros out (tar omits zero chunks, a dynamic VHD leaves zero blocks unallocated, the readers skip
zero runs); that is only right where the VDI already reads zero. These tests import into VDIs filled with other
data and compare with the source byte for byte, through the CLI, the toolstack endpoint and a BITS upload, and
check `ExactImport` against a bytearray model with hypothesis.
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smapi.cli.main import cli
from smapi.transfer.disk import Disk
from smapi.transfer.exact import ExactImport
from tests.transfer.bitsclient import BitsClient
from tests.transfer.conftest import MiB, curl, patterned, sha, status_of

SIZE = 12 * MiB
DRIVER = "smapi.drivers.file:FileDriver"


def _source(fsr) -> tuple:
    """A VDI whose content has zero regions of every shape: a whole VHD block, one tar chunk, an unaligned run."""
    vdi = fsr.create(SIZE)
    content = bytearray(patterned(5, SIZE))
    content[2 * MiB:4 * MiB] = bytes(2 * MiB)  # a whole 2 MiB block
    content[5 * MiB:6 * MiB] = bytes(MiB)  # one 1 MiB tar chunk inside an allocated block
    content[7 * MiB + 4096:7 * MiB + 300_000] = bytes(300_000 - 4096)  # an unaligned run
    content[10 * MiB:] = bytes(2 * MiB)  # the tail
    # Blocks 1 and 5 are never written: unallocated in the VDI, absent from its dynamic VHD export.
    for start, end in ((0, 2 * MiB), (4 * MiB, 10 * MiB)):
        fsr.write(vdi, start, bytes(content[start:end]))
    return vdi, bytes(content)


def _full_target(fsr, seed: int = 9) -> str:
    target = fsr.create(SIZE)
    fsr.write(target, 0, patterned(seed, SIZE))  # every block allocated, nothing reads zero
    return target


@pytest.mark.parametrize("fmt", ["raw", "vhd", "tar", "xva-legacy"])
def test_cli_import_into_a_full_vdi_reads_like_the_input(fsr, work, fmt):
    vdi, content = _source(fsr)
    out = os.path.join(work, "out." + fmt)
    base = ["-d", DRIVER, "--sr", fsr.sr, "--format", fmt, "--no-progress"]
    r = CliRunner().invoke(cli, ["vdi-export", *base, vdi, out], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    target = _full_target(fsr)
    r = CliRunner().invoke(cli, ["vdi-import", *base, target, out], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert sha(fsr.read_all(target)) == sha(content)


def test_cli_differencing_vhd_keeps_what_it_does_not_change(fsr, work):
    """A differencing VHD is changes to a base: unmarked sectors keep the VDI's data (no gap filling)."""
    vdi, content = _source(fsr)
    snap = fsr.snapshot(vdi)
    change = patterned(6, MiB)
    fsr.write(vdi, 8 * MiB, change)
    delta = os.path.join(work, "delta.vhd")
    base = ["-d", DRIVER, "--sr", fsr.sr, "--no-progress"]
    r = CliRunner().invoke(cli, ["vdi-export", *base, "--format", "vhd", "--base", snap, vdi, delta])
    assert r.exit_code == 0, r.output
    restored = fsr.create(SIZE)
    fsr.write(restored, 0, content)
    r = CliRunner().invoke(cli, ["vdi-import", *base, "--format", "vhd", restored, delta])
    assert r.exit_code == 0, r.output
    assert sha(fsr.read_all(restored)) == sha(content[:8 * MiB] + change + content[9 * MiB:])


@pytest.mark.parametrize("fmt", ["tar", "vhd"])
def test_toolstack_import_into_a_full_vdi_reads_like_the_input(fsr, host, work, fmt):
    vdi, content = _source(fsr)
    auth = ("--digest", "-u", "root:s3cret")
    out = os.path.join(work, "e." + fmt)
    assert status_of(curl(*auth, "-o", out, f"{host}/export_raw_vdi?vdi={vdi}&format={fmt}")) == 200
    target = _full_target(fsr)
    r = curl(*auth, "-T", out, f"{host}/import_raw_vdi?vdi={target}&format={fmt}")
    assert status_of(r) == 200, r.stdout
    assert sha(fsr.read_all(target)) == sha(content)


def test_bits_vhd_upload_into_a_full_vdi_reads_like_the_vhd(fsr, service, work):
    vdi, content = _source(fsr)
    out = os.path.join(work, "e.vhd")
    r = CliRunner().invoke(cli, ["vdi-export", "-d", DRIVER, "--sr", fsr.sr, "--format", "vhd", "--no-progress",
                                 vdi, out])
    assert r.exit_code == 0, r.output
    target = _full_target(fsr)
    ex = service.expose(target, "bits", read_only="false")
    with open(out, "rb") as f:
        body = f.read()
    r = ex.record
    client = BitsClient(r["ip"], int(r["port"]), r["url_path"] + ".vhd", r["username"], r["password"])
    try:
        client.upload(body, fragment=3 * MiB)
    finally:
        client.close()
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(target)) == sha(content)


# ------------------------------------------------------------------------------------------------ the model
MODEL_SIZE = 5 * MiB + 4096  # three VHD blocks, the last partial; five tar units and a partial one
_writes = st.lists(
    st.tuples(st.integers(0, MODEL_SIZE - 1), st.integers(1, 3 * MiB // 2), st.booleans()),
    min_size=0, max_size=10,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=_writes, prefilled=st.booleans())
def test_exact_import_reads_like_a_model(fsr, writes, prefilled):
    """Any writes (zero or not, any alignment) then fill_gaps: written bytes where written, zeros elsewhere."""
    vdi = fsr.create(MODEL_SIZE)
    if prefilled:
        fsr.write(vdi, 0, patterned(11, MODEL_SIZE))
    model = bytearray(MODEL_SIZE)
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as handle:
        disk = Disk(handle, True)
        up = disk.begin_upload()
        exact = ExactImport(up)
        for i, (offset, length, zero) in enumerate(writes):
            length = min(length, MODEL_SIZE - offset)
            data = bytes(length) if zero else patterned(100 + i, length)
            exact.write(offset, data)
            model[offset:offset + length] = data
        exact.fill_gaps()
        up.commit()
    assert sha(fsr.read_all(vdi)) == sha(bytes(model))
