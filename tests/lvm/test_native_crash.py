"""SIGKILL the native server of an LVM VDI (served from the PVs through the leaf's extent map, no device-mapper) at
random moments during allocating writes with flushes: every write completed before a flush that returned is present
afterwards, the leaf LV passes ``check``, and the VDI is served again natively with the same bytes. A few quick
iterations (tests/datapath/test_native_crash.py does the same on files). Trim is not offered on an LV."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from smapi.datapath import native
from tests.datapath.dptestlib import LIBNBD_PY, libnbd
from tests.datapath.nativelib import (
    CRASH_SLOT,
    assert_flushed_present,
    flushed_writes,
    require_native,
    run_rounds,
)
from tests.lvm.conftest import make_sr
from tests.lvm.helpers import LvmSR
from tests.lvm.test_native_datapath import contents, leaf_state, release, serve

CLIENT = str(Path(__file__).resolve().parent.parent / "datapath" / "crash_client.py")
MiB = 1 << 20
SIZE = 32 * MiB
SLOTS = 320  # 30 MiB of the 32, in shuffled order: early writes mostly allocate a block of the leaf



def server_pid(uri: str) -> int:
    sock = uri.split("socket=", 1)[1]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if args and args[0].endswith("nbdkit") and sock in args:
                return int(pid)
    raise AssertionError(f"no nbdkit serving {sock}")


@pytest.fixture(autouse=True)
def _stop_servers(tmp_path: Path):
    yield
    from smapi.datapath import teardown_all

    teardown_all(str(tmp_path / "run"))


@pytest.fixture
def sr(loop: str) -> LvmSR:
    require_native()
    return make_sr([loop], "thick")


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_during_allocating_writes_on_lvm(sr: LvmSR, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rnd = random.Random(seed)
    vdi = str(sr.vdi(SIZE)["vdi"])
    h = sr.driver.open_vdi(sr.sr, vdi, writable=True)  # a parent with data: the leaf's unwritten sectors show it
    try:
        h.write(0, b"\xa5" * (SIZE // 2))
    finally:
        h.close()
    sr.snapshot(vdi)
    uri, cmdline = serve(sr, vdi, monkeypatch, native.NATIVE, direct=bool(seed % 2))  # a fresh snapshot's leaf
    assert any(a.startswith("map=") for a in cmdline), cmdline
    caps = libnbd("print(h.can_trim())", uri)
    assert caps.stdout.strip() == "False", caps.stdout + caps.stderr  # no discard through the segment map
    pid = server_pid(uri)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    client = subprocess.Popen([LIBNBD_PY, CLIENT, uri, str(seed), str(rnd.randint(1, 4)), str(CRASH_SLOT), str(SLOTS)],
                              stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        # Mid-stream whatever the machine's speed: after a random number of flushes, plus a random moment.
        assert client.stdout is not None
        for _ in range(rnd.randrange(1, 40)):
            line = client.stdout.readline()
            if not line:
                break
            lines.append(line)
        time.sleep(rnd.uniform(0, 0.02))
        os.kill(pid, signal.SIGKILL)
        out, _ = client.communicate(timeout=60)
        out = "".join(lines) + out
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        release(sr, vdi)  # the server is gone; deactivate and detach clean up its record
    flushed = flushed_writes(out)
    _, ok, errors = leaf_state(sr, vdi)
    assert ok, errors
    disk = contents(sr, vdi, SIZE)
    assert_flushed_present(disk, seed, SLOTS, flushed)
    # The crashed leaf is served natively again and reads what the driver's library reads.
    try:
        uri, _ = serve(sr, vdi, monkeypatch, native.NATIVE, direct=False)
        got = run_rounds(uri, 1, [[["r", 0, SIZE]]])
    finally:
        release(sr, vdi)
    assert got == [hashlib.sha256(disk).hexdigest()]
    sr.v("VDI.destroy", vdi=vdi)
