"""Changed-block tracking through the storage interface, on every driver that advertises VDI_CONFIG_CBT (a
driver that advertises it must pass; one that does not must refuse the verbs as Unimplemented)."""

from __future__ import annotations

import base64

import pytest

from smapi.interface.errors import Backend_error, Unimplemented
from tests.conformance.conftest import MiB, SRClient, pattern

G = 64 * 1024


def _blocks(bitmap_b64: str) -> set:
    raw = base64.b64decode(bitmap_b64)
    return {i * 8 + j for i, b in enumerate(raw) for j in range(8) if b & (0x80 >> j)}


def _advertised(sr: SRClient) -> bool:
    return "VDI_CONFIG_CBT" in sr.call("Query.query")["features"]


def test_changed_blocks_between_snapshots_and_to_the_vdi(sr: SRClient) -> None:
    vdi = sr.create(4 * MiB)["vdi"]
    if not _advertised(sr):
        with pytest.raises(Unimplemented):
            sr.v("VDI.enable_cbt", vdi=vdi)
        return
    sr.v("VDI.enable_cbt", vdi=vdi)
    assert sr.stat(vdi)["sm_config"].get("cbt_enabled") == "true"
    s1 = sr.snapshot(vdi)["vdi"]
    assert sr.stat(s1)["sm_config"].get("cbt_enabled") == "true"
    sr.write(vdi, 3 * G + 100, pattern("a", 5000))   # blocks 3
    sr.write(vdi, 2 * MiB - 10, pattern("b", 20))    # blocks 31, 32
    s2 = sr.snapshot(vdi)["vdi"]
    sr.write(vdi, 0, pattern("c", 1))                # block 0
    assert _blocks(sr.v("VDI.list_changed_blocks", vdi_from=s1, vdi_tp=s2)) == {3, 31, 32}
    assert _blocks(sr.v("VDI.list_changed_blocks", vdi_from=s1, vdi_tp=vdi)) == {0, 3, 31, 32}
    assert _blocks(sr.v("VDI.list_changed_blocks", vdi_from=s2, vdi_tp=vdi)) == {0}
    # the backup cycle: the older snapshot's data goes, its tracking stays
    sr.v("VDI.data_destroy", vdi=s1)
    assert sr.stat(s1)["ty"] == "cbt_metadata"
    sr.gc()
    assert _blocks(sr.v("VDI.list_changed_blocks", vdi_from=s1, vdi_tp=s2)) == {3, 31, 32}
    assert sr.read(s2, 3 * G + 100, 5000) == pattern("a", 5000)
    sr.v("VDI.disable_cbt", vdi=vdi)
    assert "cbt_enabled" not in sr.stat(vdi)["sm_config"]
    with pytest.raises(Backend_error):
        sr.v("VDI.list_changed_blocks", vdi_from=s2, vdi_tp=vdi)
