"""SR verbs, and the SR describing itself: its metadata survives detach and a host that forgot everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from smapi.interface.errors import Backend_error, Illegal_transition, Sr_not_attached
from smapi.testing.client import Factory, MiB, SRClient, new_sr_uuid, pattern
from smapi.testing.features import needs
from smapi.testing.sut import SRUnderTest


def _probe_finds(result: Any, sr_uuid: str) -> bool:
    """Whether a probe result reports an attachable SR with this uuid (structured or classic XML)."""
    tag, payload = result
    if tag == "Raw":
        return sr_uuid in payload
    return any(p.get("sr") and p["sr"].get("sr_uuid") == sr_uuid and p["complete"] for p in payload)


def test_sr_lifecycle_create_attach_ls_stat_scan_detach(sut: SRUnderTest) -> None:
    sr = SRClient(sut, new_sr_uuid())
    assert sr.sr not in sr.call("SR.ls")
    sr.create_sr()
    sr.attach()
    sr.attach()  # attach is idempotent (SR.attach after a toolstack restart)
    assert sr.sr in sr.call("SR.ls")
    assert sr.scan() == {}
    stat = sr.v("SR.stat")
    assert stat["total_space"] > 0 and 0 <= stat["free_space"] <= stat["total_space"]
    assert stat["health"] == "Healthy"
    vdi = sr.create(MiB)["vdi"]
    sr.detach()
    assert sr.sr not in sr.call("SR.ls")
    with pytest.raises(Sr_not_attached):
        sr.scan()
    with pytest.raises(Sr_not_attached):
        sr.v("SR.stat")
    sr.attach()
    assert set(sr.scan()) == {vdi}
    sr.detach()


@needs("VDI_SNAPSHOT", "VDI_CLONE", "open_vdi")
def test_scan_lists_exactly_the_visible_vdis(sr: SRClient) -> None:
    a = sr.create(MiB)["vdi"]
    sr.write(a, 0, pattern("a", MiB))
    b = sr.create(MiB)["vdi"]
    s = sr.snapshot(a)["vdi"]
    sr.write(a, 0, b"changed")
    s2 = sr.snapshot(a)["vdi"]
    c = sr.clone(s)["vdi"]
    sr.destroy(b)
    # the parents the snapshots created are internal: only what the verbs returned is visible
    assert set(sr.scan()) == {a, s, s2, c}


@needs("open_vdi")
def test_create_over_an_existing_sr_is_refused(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    sr.write(vdi, 0, b"precious")
    with pytest.raises(Backend_error):
        sr.call("SR.create", sr=new_sr_uuid(), device_config=sr.device_config, physical_size=0)
    assert set(sr.scan()) == {vdi}
    assert sr.read(vdi, 0, 8) == b"precious"


def test_attach_where_there_is_no_sr_fails(factory: Factory, sut: SRUnderTest, tmp_path: Path) -> None:
    empty = factory(tmp_path / "nothing-here")
    sr = SRClient(sut, new_sr_uuid(), device_config=empty.device_config)
    with pytest.raises(Backend_error):
        sr.attach()
    assert sr.sr not in sr.call("SR.ls")
    empty.cleanup()


@needs("VDI_ATTACH", "VDI_ACTIVATE")
def test_detach_tears_down_active_vdis(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)
    sr.v("VDI.activate", dp="dp1", vdi=vdi)
    sr.detach()  # "first detaching and/or deactivating any active VDIs"
    sr.attach()
    # the datapath is back in Detached: activate without attach is refused, detach is a no-op
    with pytest.raises(Illegal_transition):
        sr.v("VDI.activate", dp="dp1", vdi=vdi)
    sr.v("VDI.detach", dp="dp1", vdi=vdi)


@needs("SR_PROBE", "SR_DELETE")
def test_destroy_makes_the_sr_unattachable_and_unprobeable(sr: SRClient) -> None:
    sr.create(MiB)
    assert _probe_finds(sr.call("SR.probe", device_config=sr.device_config), sr.sr)
    sr.v("SR.destroy")
    assert sr.sr not in sr.call("SR.ls")
    with pytest.raises(Sr_not_attached):
        sr.scan()
    assert not _probe_finds(sr.call("SR.probe", device_config=sr.device_config), sr.sr)
    with pytest.raises(Backend_error):
        sr.attach()


@needs("SR_PROBE")
def test_probe_reports_the_sr_and_nothing_where_there_is_none(
        sr: SRClient, factory: Factory, tmp_path: Path) -> None:
    assert _probe_finds(sr.call("SR.probe", device_config=sr.device_config), sr.sr)
    empty = factory(tmp_path / "empty")
    result = sr.call("SR.probe", device_config=empty.device_config)
    assert not _probe_finds(result, sr.sr)
    if result[0] == "Probe":
        assert not any(p.get("sr") for p in result[1])
    empty.cleanup()


@needs("open_vdi")
def test_reset_loses_no_data(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    data = pattern("reset", MiB)
    sr.write(vdi, 0, data)
    before = sr.scan()
    sr.v("SR.reset")
    sr.reload()
    sr.attach()
    assert sr.scan().keys() == before.keys()
    assert sr.read_all(vdi) == data


def _describe(sr: SRClient) -> Dict[str, Dict[str, Any]]:
    # every field of every record, plus the data; physical_utilisation included: nothing was written since
    return {vdi: {**info, "sha256": sr.digest(vdi)} for vdi, info in sr.scan().items()}


@needs("VDI_SNAPSHOT", "VDI_CLONE", "open_vdi", "gc")
def test_metadata_survives_detach_and_a_fresh_host(
        sr: SRClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = sr.create(3 * MiB, name_label="alpha", name_description="first disk", sm_config={"k": "v"})["vdi"]
    sr.write(a, 0, pattern("alpha", 3 * MiB))
    snap = sr.snapshot(a)["vdi"]
    sr.write(a, MiB, b"after snapshot" * 100)
    clone = sr.clone(snap, name_label="beta")["vdi"]
    sr.write(clone, 2 * MiB, b"clone data" * 100)
    sr.v("VDI.set_content_id", vdi=clone, content_id="cid-beta")
    sr.v("VDI.set_persistent", vdi=a, persistent=False)
    before = _describe(sr)
    assert set(before) == {a, snap, clone}
    sr.detach()
    # a different host: no run directory state at all, and a new driver instance
    fresh = tmp_path / "fresh-run-dir"
    fresh.mkdir()
    monkeypatch.setenv("SMAPI_RUN_DIR", str(fresh))
    sr.reload()
    sr.attach()
    assert _describe(sr) == before
    assert sr.stat(snap)["snapshot_of"] == a and sr.stat(a)["persistent"] is False
    # and the chain still works: a new snapshot of the clone, then GC, lose nothing
    sr.snapshot(clone)
    sr.gc()
    after = _describe(sr)
    assert {v: d["sha256"] for v, d in after.items() if v in before} == {v: d["sha256"] for v, d in before.items()}


def test_sr_names_are_kept_with_the_sr(sr: SRClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sr.v("SR.set_name_label", new_name_label="conformance SR")
    sr.v("SR.set_name_description", new_name_description="made by the conformance suite")
    stat = sr.v("SR.stat")
    assert (stat["name_label"], stat["name_description"]) == ("conformance SR", "made by the conformance suite")
    sr.detach()
    fresh = tmp_path / "another-host"
    fresh.mkdir()
    monkeypatch.setenv("SMAPI_RUN_DIR", str(fresh))
    sr.reload()
    sr.attach()
    assert sr.v("SR.stat")["name_label"] == "conformance SR"


def test_query_describes_the_driver_and_its_configuration(sr: SRClient) -> None:
    query = sr.call("Query.query")
    assert query["driver"] and query["name"] and query["version"]
    # every device_config key the SR needs is documented for the toolstack (xe sm-list / sr-create help)
    undocumented = set(sr.device_config) - set(query["configuration"])
    assert not undocumented, f"device_config keys not described in Query.query's configuration: {undocumented}"
    assert isinstance(sr.call("Query.diagnostics"), str)
