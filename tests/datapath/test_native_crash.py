"""SIGKILL the native server at random moments during allocating writes with flushes: every write completed before a
flush that returned is present afterwards, and every image passes ``smapi vhd check`` and reopens in the server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

import smapi.vhd as vhd

from .dptestlib import LIBNBD_PY
from .nativelib import (
    CRASH_SLOT,
    assert_flushed_present,
    copy_dir,
    flushed_writes,
    require_native,
    serve,
    smapi_check,
)

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_client.py")
SLOTS = 400  # 37.5 MiB of a 40 MiB disk: most writes allocate a block of the leaf



@pytest.mark.parametrize("seed", range(6))
def test_sigkill_during_allocating_writes(scratch, seed):
    require_native()
    rnd = random.Random(seed)
    size = 40 << 20
    base = os.path.join(scratch, "base.vhd")
    vhd.create_dynamic(base, size)
    with vhd.open_chain(base, writable=True) as chain:  # a parent with data: the leaf's unwritten sectors show it
        chain.write(0, b"\xa5" * (size // 2))
    leaf = os.path.join(scratch, "leaf.vhd")
    vhd.snapshot(base, leaf)
    pristine = bytes(vhd.open_chain(leaf).read(0, size))
    srv, ex = serve(os.path.join(scratch, "run"), leaf)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    argv = [LIBNBD_PY, CLIENT, ex.uri, str(seed), str(rnd.randint(1, 4)), str(CRASH_SLOT), str(SLOTS)]
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(rnd.uniform(0.05, 1.5))
        os.kill(ex.pid, signal.SIGKILL)
        out, _ = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        srv.stop("vdi")  # the record and socket (the process is gone)
    flushed = flushed_writes(out)
    res = smapi_check(leaf)
    assert res.returncode == 0, res.stdout + res.stderr
    with vhd.open_chain(leaf) as chain:
        disk = chain.read(0, size)
    assert_flushed_present(disk, seed, SLOTS, flushed)
    order = list(range(SLOTS))
    random.Random(seed).shuffle(order)
    untouched = set(range(SLOTS)) - {order[i] for i in range(SLOTS)}
    assert not untouched
    # The crashed leaf reopens in the native server and reads what the library reads.
    copy_dir(scratch, os.path.join(scratch, "again"))
    srv2, ex2 = serve(os.path.join(scratch, "run2"), os.path.join(scratch, "again", "leaf.vhd"), "v2")
    try:
        got = subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", ex2.uri,
                              os.path.join(scratch, "again.raw")], capture_output=True, timeout=120)
        assert got.returncode == 0, got.stderr
    finally:
        srv2.stop("v2")
    with open(os.path.join(scratch, "again.raw"), "rb") as f:
        assert f.read() == disk
    assert len(pristine) == size
