"""A host of an LVM pool SR killed outright while holding the SR lease: the other host takes over after expiry
and replays the dead host's journal (issue 14). Slow: sanlock needs ~68 s (io_timeout 1 s) to expire a host."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.pool.expiry import create_after_expiry, die_mid_create, stalled_save_is_fenced
from tests.pool.lvmpool import lvm_pool


@pytest.mark.slow
def test_a_killed_host_s_sr_lease_passes_to_the_other_after_expiry_and_its_journal_is_replayed(
        tmp_path: Path) -> None:
    with lvm_pool(tmp_path) as pool:
        a, b, sr = pool.a, pool.b, pool.sr
        kept = b.call("VDI.create", sr=sr, vdi_info={"virtual_size": 1 << 20, "name_label": "kept"})["vdi"]
        b.write(sr, kept, 0, "acknowledged before A died")
        orphan = str(uuid.uuid4())
        # A's verb, half-way: SR lease held, journal entry written, LV created, record not yet saved
        volume = die_mid_create(a, sr, orphan, 1 << 20)
        assert volume in pool.image_lvs()
        made = create_after_expiry(b, sr, "after")
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
    with lvm_pool(tmp_path) as pool:
        a, b, sr = pool.a, pool.b, pool.sr
        stalled_save_is_fenced(a, b, sr)
        assert pool.record_volumes() == pool.image_lvs()
        b.call("SR.detach", sr=sr)
        pool.extra["gone"] = True  # A's daemon was fenced out of the lockspace: the VG is removed by the clean-up
