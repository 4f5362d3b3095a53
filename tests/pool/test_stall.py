"""A host stalled past expiry while one of its verb processes holds the SR lease never overwrites a newer change."""

from __future__ import annotations

import pytest

from tests.pool.expiry import stalled_save_is_fenced
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
    stalled_save_is_fenced(a, b, sr)
    b.call("SR.detach", sr=sr)
