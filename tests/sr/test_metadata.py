"""The SR describes itself: names, flags, content ids, sm_config and the tree survive a detach and an attach on
a host that has never seen the SR (a fresh run directory)."""

from __future__ import annotations

import os

import pytest

from smapi.interface.errors import Backend_error, Sr_not_attached
from tests.sr.helpers import FileSR, MiB, pattern, sha


def test_everything_survives_detach_and_attach_on_a_fresh_host(fsr: FileSR, fresh_run_dir) -> None:
    vdi = fsr.create(3 * MiB + 512, name_label="disk", name_description="the disk", sm_config={"k": "v"})
    fsr.write(vdi, 0, pattern("disk", 3 * MiB))
    fsr.v("VDI.set_content_id", vdi=vdi, content_id="cid-1")
    fsr.v("VDI.add_to_sm_config", vdi=vdi, key="k2", value="v2")
    snap = fsr.snapshot(vdi)
    fsr.v("VDI.set_persistent", vdi=snap, persistent=False)
    fsr.v("SR.set_name_label", new_name_label="my sr")
    raw = fsr.create(MiB, sm_config={"type": "raw"})
    fsr.write(raw, 512, b"r" * 512)
    before, digests = fsr.scan(), fsr.digests()
    fsr.v("VDI.attach", dp="dp", vdi=vdi, read_write=True)
    fsr.v("SR.detach")
    with pytest.raises(Sr_not_attached):
        fsr.scan()

    fresh_run_dir("other-host")
    fsr.reload()
    assert fsr.call("SR.ls") == []
    fsr.attach()
    assert fsr.scan() == before
    assert fsr.digests() == digests
    assert fsr.v("SR.stat")["name_label"] == "my sr"
    assert fsr.stat(vdi)["sm_config"] == {"k": "v", "k2": "v2", "vdi_type": "vhd"}
    assert fsr.stat(raw)["sm_config"]["vdi_type"] == "aio"
    # host-local state was not carried over: the datapath of the old host is gone
    fsr.v("VDI.destroy", vdi=vdi)
    fsr.assert_consistent()


def test_document_updates_leave_no_temporary_files(fsr: FileSR) -> None:
    for i in range(5):
        fsr.create(MiB, name_label=f"v{i}")
    names = os.listdir(fsr.path)
    assert not [n for n in names if ".tmp" in n], names


def test_attach_refuses_a_directory_without_sr_and_a_wrong_uuid(fsr: FileSR, tmp_path) -> None:
    with pytest.raises(Backend_error, match="SR_BACKEND_FAILURE_47"):
        fsr.call("SR.attach", sr="x", device_config={"path": os.fspath(tmp_path / "nothing")})
    with pytest.raises(Backend_error, match="holds SR"):
        fsr.call("SR.attach", sr="another-uuid", device_config=fsr.device_config)


def test_sr_destroy_removes_every_vdi_and_the_sr(fsr: FileSR) -> None:
    vdi = fsr.create(MiB)
    fsr.snapshot(vdi)
    fsr.v("SR.destroy")
    assert not os.path.exists(os.path.join(fsr.path, "sr.json"))
    assert fsr.call("SR.probe", device_config=fsr.device_config) == ["Probe", []]


def test_a_digest_is_stable_across_reads(fsr: FileSR) -> None:
    vdi = fsr.create(2 * MiB)
    fsr.write(vdi, MiB, b"x" * 4096)
    assert sha(fsr.read_all(vdi)) == sha(fsr.read_all(vdi))
