"""A host of an LVM pool SR killed outright while holding the SR lease: the other host takes over after expiry
and replays the dead host's journal (issue 14). Slow: sanlock needs ~68 s (io_timeout 1 s) to expire a host."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.pool.lvmpool import lvm_pool


@pytest.mark.slow
def test_a_killed_host_s_sr_lease_passes_to_the_other_after_expiry_and_its_journal_is_replayed(
        tmp_path: Path) -> None:
    with lvm_pool(tmp_path) as pool:
        a, b, sr = pool.a, pool.b, pool.sr
        kept = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "kept"})["vdi"]
        b.write(sr, kept, 0, "acknowledged before A died")
        orphan = str(uuid.uuid4())
        dying = a.process()
        # A's verb, half-way: SR lease held, journal entry written, LV created, record not yet saved
        volume = dying.run("""
engine = driver.engine_for(sr)
engine.sr_lock().acquire()
result = engine.volume_of(orphan, "vhd")
engine.journal.begin("create", vdi=orphan, volume=result)
engine.substrate.create_volume(result, 1 << 20).close()
""", sr=sr, orphan=orphan)
        assert volume in pool.image_lvs()
        os.killpg(a.host.daemon_pid, signal.SIGKILL)  # the host dies: its daemon first, so nothing is released...
        dying.proc.kill()  # ...then its processes
        dying.proc.wait()
        started = time.monotonic()
        made = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "after"})["vdi"]
        waited = time.monotonic() - started
        assert waited > 30, f"B took A's SR lease after {waited:.0f}s, before A's host lease could expire"
        assert {v["vdi"]: v["name_label"] for v in b.call("SR.scan", sr=sr)} == {kept: "kept", made: "after"}
        # A's journal was replayed: its LV is gone, and the records are exactly the LVs
        assert volume not in pool.image_lvs()
        assert pool.record_volumes() == pool.image_lvs()
        assert b.read(sr, kept, 0, 26) == "acknowledged before A died"
        # A is no live host any more: B may destroy the SR
        b.call("SR.destroy", sr=sr)
        pool.extra["gone"] = True


@pytest.mark.slow
def test_a_host_stopped_past_expiry_cannot_undo_a_newer_change(tmp_path: Path) -> None:
    """Host A (its daemon and a verb process holding the SR lease, with the SR document read) is SIGSTOPped;
    B takes the SR lease after A's host lease expired and commits. A's process resumes before its daemon could
    kill it and saves what it read: the save is fenced by the lease version, B's change stays."""
    import contextlib

    from tests.pool.hostproc import RemoteError

    with lvm_pool(tmp_path) as pool:
        a, b, sr = pool.a, pool.b, pool.sr
        stale = a.process()
        stale.run("engine = driver.engine_for(sr); lock = engine.sr_lock(); lock.acquire(); doc = engine.load()\n"
                  "result = engine.substrate.pool().generation('sr')", sr=sr)
        os.killpg(a.host.daemon_pid, signal.SIGSTOP)
        os.kill(stale.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            made = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "b's change"})["vdi"]
            waited = time.monotonic() - started
            assert waited > 30, f"B took the SR lease after {waited:.0f}s, before A's host lease could expire"
            os.kill(stale.pid, signal.SIGCONT)  # the process first: its daemon, still stopped, cannot kill it
            with pytest.raises(RemoteError) as fenced:
                stale.run("doc.name_label = 'stale'; engine.save(doc)")
            assert "lease version" in str(fenced.value), fenced.value
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stale.pid, signal.SIGCONT)
            os.killpg(a.host.daemon_pid, signal.SIGCONT)  # which then kills the stale process: its lease expired
        assert {v["vdi"]: v["name_label"] for v in b.call("SR.scan", sr=sr)} == {made: "b's change"}
        assert b.call("SR.stat", sr=sr)["name_label"] != "stale"
        assert pool.record_volumes() == pool.image_lvs()
        b.call("SR.detach", sr=sr)
        pool.extra["gone"] = True  # A's daemon was fenced out of the lockspace: the VG is removed by the clean-up
