"""The two host-expiry scenarios every pool SR type runs (slow: sanlock expires a host ~68 s after its last
renewal at io_timeout 1 s): a host killed in the middle of a verb, and a host stalled while a verb holds the SR
lease. Driver-agnostic: the hosts are `PoolHost`s (NFS, LVM, iSCSI); each test adds its storage's own checks."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from tests.pool.hostproc import RemoteError
from tests.pool.poolhost import PoolHost


def die_mid_create(a: PoolHost, sr: str, vdi: str, size: int) -> str:
    """A's verb process, half-way through a VDI.create of `vdi` (SR lease held, journal entry written, volume
    created, record not yet saved), dies with its host: the daemon first, so nothing is released. Returns the
    volume it made."""
    dying = a.process()
    volume = str(dying.run("""
engine = driver.engine_for(sr)
engine.sr_lock().acquire()
result = engine.volume_of(vdi, "vhd")
engine.journal.begin("create", vdi=vdi, volume=result)
engine.substrate.create_volume(result, size).close()
""", sr=sr, vdi=vdi, size=size))
    os.killpg(a.host.daemon_pid, signal.SIGKILL)
    dying.proc.kill()
    dying.proc.wait()
    return volume


def create_after_expiry(b: PoolHost, sr: str, label: str) -> str:
    """B's VDI.create, which must wait for A's host lease to expire before it gets the SR lease."""
    started = time.monotonic()
    made = str(b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": label})["vdi"])
    waited = time.monotonic() - started
    assert waited > 30, f"B took the SR lease after {waited:.0f}s, before A's host lease could expire"
    return made


def stalled_save_is_fenced(a: PoolHost, b: PoolHost, sr: str) -> str:
    """A (its daemon and a verb process holding the SR lease, with the SR document read) is SIGSTOPped; B takes
    the SR lease after A's host lease expired and creates a VDI (returned). A's process resumes before its daemon
    could kill it and saves what it read: the save must be refused by the lease version, B's change stays."""
    stale = a.process()
    # the verb holds the SR lease, has read the document and knows its lease version (its fencing token: what a
    # verb reads when it first saves, before any stall)
    stale.run("engine = driver.engine_for(sr); lock = engine.sr_lock(); lock.acquire(); doc = engine.load()\n"
              "result = engine.substrate.pool().generation('sr')", sr=sr)
    os.killpg(a.host.daemon_pid, signal.SIGSTOP)
    os.kill(stale.pid, signal.SIGSTOP)
    try:
        made = create_after_expiry(b, sr, "b's change")
        # the process first: its daemon, still stopped, cannot kill it (and the save needs no daemon call)
        os.kill(stale.pid, signal.SIGCONT)
        with pytest.raises(RemoteError) as fenced:
            stale.run("doc.name_label = 'stale'; engine.save(doc)")
        assert "lease version" in str(fenced.value), fenced.value
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stale.pid, signal.SIGCONT)
        os.killpg(a.host.daemon_pid, signal.SIGCONT)  # which then kills the stale process: its lease expired
    assert {v["vdi"]: v["name_label"] for v in b.call("SR.scan", sr=sr)} == {made: "b's change"}
    assert b.call("SR.stat", sr=sr)["name_label"] != "stale"
    return made
