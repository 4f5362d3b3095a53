"""The request path of the NBD plugin: what it promises clients (multi-conn) and that flushes keep that promise."""

from __future__ import annotations

import os
import signal
import time

import smapi.vhd as vhd
from smapi.datapath import ImageSpec, NbdServer, procs
from smapi.datapath.nbdclient import NbdClient

from .dptestlib import BLOCK, MiB

FLAG_CAN_MULTI_CONN = 1 << 8  # NBD transmission flag


def _sigkill(pid: int) -> None:
    """No cleanup of any kind (the plugin's exit commit does not run): only what flushes made durable stays."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procs.running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not procs.running(pid)


def test_a_flush_on_one_connection_commits_the_writes_of_another(scratch, run_dir):
    leaf = os.path.join(scratch, "mc.vhd")
    vhd.create_dynamic(leaf, 8 * MiB)
    server = NbdServer(run_dir)
    ex = server.start("mc", ImageSpec("vhd", leaf), readonly=False)
    try:
        a_data, b_data = b"\xa5" * 8192, b"\x5a" * 4096
        with NbdClient(ex.socket, ex.export) as a, NbdClient(ex.socket, ex.export) as b:
            assert a.info.flags & FLAG_CAN_MULTI_CONN and b.info.flags & FLAG_CAN_MULTI_CONN
            a.pwrite(a_data, BLOCK + 4096)  # allocates a block: data, then BAT at commit
            b.pwrite(b_data, 0)
            assert b.pread(len(a_data), BLOCK + 4096) == a_data  # b sees a's completed write
            b.flush()  # must cover a's write as well
        _sigkill(ex.pid)
        with vhd.open_chain(leaf) as chain:
            assert chain.read(BLOCK + 4096, len(a_data)) == a_data
            assert chain.read(0, len(b_data)) == b_data
        assert vhd.check(leaf).ok
    finally:
        server.stop("mc")


def test_readonly_export_promises_multi_conn_too(scratch, run_dir):
    leaf = os.path.join(scratch, "ro.vhd")
    vhd.create_dynamic(leaf, 4 * MiB)
    server = NbdServer(run_dir)
    ex = server.start("ro", ImageSpec("vhd", leaf), readonly=True)
    try:
        with NbdClient(ex.socket, ex.export) as c:
            assert c.info.readonly and c.info.flags & FLAG_CAN_MULTI_CONN
    finally:
        server.stop("ro")
