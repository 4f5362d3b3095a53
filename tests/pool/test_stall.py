"""A host stalled past expiry while one of its verb processes holds the SR lease never overwrites a newer change."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from tests.pool.hostproc import RemoteError
from tests.pool.nfspool import NfsHost, new_sr, nfs_env


@pytest.mark.slow
@pytest.mark.parametrize("nfs_server", ["4"], indirect=True, ids=["v4"])
def test_a_host_stopped_past_expiry_cannot_undo_a_newer_change(make_hosts, nfs_server) -> None:
    """Host A (its daemon and a verb process holding the SR lease, with the SR document read) is SIGSTOPped;
    B takes the SR lease after A's host lease expired (~68 s at io_timeout 1 s) and commits. A's process then
    resumes before its daemon could kill it, and saves what it read: the save is fenced by the lease version."""
    a, b = (NfsHost(h) for h in make_hosts(2, **nfs_env(nfs_server)))
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    b.call("SR.attach", sr=sr, device_config=dc)
    stale = a.process()
    # the verb holds the SR lease, has read the document and knows its lease version (its fencing token: what a
    # verb reads when it first saves, before any stall)
    stale.run("engine = driver.engine_for(sr); lock = engine.sr_lock(); lock.acquire(); doc = engine.load()\n"
              "result = engine.substrate.pool().generation('sr')", sr=sr)
    os.killpg(a.host.daemon_pid, signal.SIGSTOP)
    os.kill(stale.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        made = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "b's change"})["vdi"]
        waited = time.monotonic() - started
        assert waited > 30, f"B took the SR lease after {waited:.0f}s, before A's host lease could expire"
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
    b.call("SR.detach", sr=sr)
