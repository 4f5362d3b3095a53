"""vdi-import is atomic: an import that fails, or whose process is killed, leaves the VDI as it was (after the
SR's next scan, for a killed one); an import killed after its upload was accepted is finished by that scan."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from smapi.sr.faults import ENV as FAULT_ENV
from smapi.sr.faults import FAULT_EXIT_CODE
from tests.transfer.conftest import MiB, patterned, sha

SIZE = 16 * MiB
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = "smapi.drivers.file:FileDriver"


def _import_cmd(fsr, vdi: str, path: str, fmt: str = "raw") -> list:
    return [sys.executable, "-m", "smapi.cli.main", "vdi-import", "-d", DRIVER, "--sr", fsr.sr, "--format", fmt,
            "--no-progress", vdi, path]


def _scratches(fsr) -> list:
    return glob.glob(os.path.join(fsr.path, "upload-*"))


def _wait(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def target(fsr):
    vdi = fsr.create(SIZE)
    content = patterned(31, SIZE)
    fsr.write(vdi, 0, content)
    return vdi, content


def test_a_killed_import_leaves_the_vdi_unchanged_after_the_next_scan(fsr, work, target):
    vdi, content = target
    fifo = os.path.join(work, "input")
    os.mkfifo(fifo)
    proc = subprocess.Popen(_import_cmd(fsr, vdi, fifo), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": ROOT})
    body = patterned(32, SIZE)
    feeder_done = threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as f:  # blocks until the importer opens the FIFO
                f.write(body[:SIZE // 2])
                f.flush()
                feeder_done.wait(60)  # keep the FIFO open: the importer waits for more input
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        _wait(lambda: _scratches(fsr) and os.path.getsize(_scratches(fsr)[0]) > SIZE // 4, "the import's scratch")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        feeder_done.set()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    feeder.join(10)
    assert proc.returncode == -signal.SIGKILL
    assert len(_scratches(fsr)) == 1, "the killed import left its scratch (removed by the next scan)"
    assert sha(fsr.read_all(vdi)) == sha(content), "half an import reached the VDI"
    fsr.v("SR.scan")
    assert _scratches(fsr) == []
    assert sha(fsr.read_all(vdi)) == sha(content)
    fsr.assert_consistent()


def test_a_failed_import_leaves_the_vdi_unchanged(fsr, work, target):
    vdi, content = target
    # A tar whose second chunk is corrupt: the first one was already received when the import stops.
    from click.testing import CliRunner

    from smapi.cli.main import cli

    base = ["-d", DRIVER, "--sr", fsr.sr, "--no-progress"]
    src = fsr.create(SIZE)
    fsr.write(src, 0, patterned(33, SIZE))
    tar = os.path.join(work, "x.tar")
    assert CliRunner().invoke(cli, ["vdi-export", *base, "--format", "tar", src, tar]).exit_code == 0
    with open(tar, "r+b") as f:
        f.seek(3 * 512 + MiB + 1000)  # inside the second chunk's data
        byte = f.read(1)
        f.seek(3 * 512 + MiB + 1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    r = CliRunner().invoke(cli, ["vdi-import", *base, "--format", "tar", vdi, tar])
    assert r.exit_code == 1 and "checksum mismatch" in r.output, r.output
    assert _scratches(fsr) == []
    assert sha(fsr.read_all(vdi)) == sha(content)
    fsr.assert_consistent()


@pytest.mark.parametrize("step", ["accepted", "reparented", "swapped"])
def test_an_import_killed_after_it_was_accepted_is_finished_by_the_next_scan(fsr, work, target, step):
    from smapi.sr import scratch

    vdi, _content = target
    body = patterned(34, SIZE)
    path = os.path.join(work, "input.raw")
    with open(path, "wb") as f:
        f.write(body)
    env = {**os.environ, "PYTHONPATH": ROOT, scratch.RELINK_ENV: "1", FAULT_ENV: f"upload.{step}"}
    r = subprocess.run(_import_cmd(fsr, vdi, path), cwd=ROOT, capture_output=True, timeout=120, env=env)
    assert r.returncode == FAULT_EXIT_CODE, r.stderr.decode()[-2000:]
    fsr.v("SR.scan")
    assert _scratches(fsr) == []
    assert sha(fsr.read_all(vdi)) == sha(body)
    fsr.assert_consistent()
