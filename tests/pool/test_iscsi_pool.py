"""An iSCSI SR (always a pool SR) on one tgtd LUN, reached by two simulated hosts through their own userspace
initiator sessions, each with its own sanlock daemon, run directory and lvm state (issue 14): a VDI active on A
is refused on B, and so is SR.destroy while A is attached; every write A acknowledged reads back on B."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.pool.lvmpool import (
    ISCSI_DRIVER,
    GiB,
    LvmHost,
    MiB,
    activate,
    lvm_unavailable,
    qemu_io,
    refused_as_active_on,
    refused_in_use_by,
    release,
    tool_missing,
)


def _unavailable() -> str:
    from tests.iscsi.factory import iscsi_unavailable

    return lvm_unavailable() or iscsi_unavailable() or tool_missing("qemu-io") or ""


def test_two_hosts_on_one_lun_refuse_what_the_other_holds(tmp_path: Path) -> None:
    why = _unavailable()
    if why:
        pytest.skip(why)
    from tests.iscsi.factory import release_sessions, shared_server
    from tests.pool.conftest import HostSet

    tgt = shared_server()
    target = tgt.add_target(f"pool-{uuid.uuid4().hex[:10]}", [(1, GiB)])
    hosts = HostSet(tmp_path)
    try:
        a, b = (LvmHost(h, ISCSI_DRIVER) for h in hosts(2, SMAPI_GC="sync", SMAPI_ISCSI_CLIENT="userspace"))
        sr = str(uuid.uuid4())
        dc = {"target": "127.0.0.1", "port": str(tgt.port), "targetIQN": target.iqn, "LUNid": "1"}
        a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
        a.call("SR.attach", sr=sr, device_config=dc)
        b.call("SR.attach", sr=sr, device_config=dc)
        vdi = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": 4 * MiB, "name_label": "disk"})["vdi"]
        uri = activate(a, sr, vdi, "vm-a", rw=True)["xenstore_data"]["nbd-uri"]
        qemu_io(uri, "write -P 0x5a 0 65536", "flush")

        b.call("VDI.attach", sr=sr, dp="vm-b", vdi=vdi, read_write=True)
        refused_as_active_on(a, sr, lambda: b.call("VDI.activate", sr=sr, dp="vm-b", vdi=vdi))
        b.call("VDI.detach", sr=sr, dp="vm-b", vdi=vdi)
        info = b.call("VDI.stat", sr=sr, vdi=vdi)
        refused_as_active_on(a, sr, lambda: b.call("VDI.snapshot", sr=sr, vdi_info=info))
        refused_in_use_by(a, sr, lambda: b.call("SR.destroy", sr=sr))
        assert {v["vdi"] for v in b.call("SR.scan", sr=sr)} == {vdi}  # nothing went

        qemu_io(uri, "write -P 0x41 1048576 65536", "flush", "read -P 0x5a 0 65536")
        release(a, sr, vdi, "vm-a")
        assert b.read(sr, vdi, 0, 4) == "\x5a" * 4 and b.read(sr, vdi, MiB, 4) == "A" * 4
        b.call("SR.detach", sr=sr)
        a.call("SR.destroy", sr=sr)  # B has left
    finally:
        try:
            hosts.close()
        finally:
            release_sessions(target.iqn, str(tmp_path))
            tgt.remove_target(target)
