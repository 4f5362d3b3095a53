"""The LVM SR end to end on real lvm2: provisioning, space accounting, errors, probe, create safety, re-attach."""

from __future__ import annotations

import os
from typing import Callable

import pytest

from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.mgt import HEADER_SIZE, SLOT_SIZE
from smapi.drivers.lvm.provision import thick_lv_size
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error
from tests.lvm.conftest import make_sr
from tests.lvm.helpers import LvmSR

MiB = 1 << 20
GiB = 1 << 30


def code(name: str) -> str:
    return f"SR_BACKEND_FAILURE_{CLASSIC_CODES[name][0]}"


def test_layout_is_classic(thick_sr: LvmSR) -> None:
    vhd = thick_sr.vdi(64 * MiB)["vdi"]
    raw = thick_sr.vdi(10 * MiB + 512, sm_config={"type": "raw"})["vdi"]
    sizes = thick_sr.lv_sizes()
    assert thick_sr.vg.startswith("VG_XenStorage-")
    assert set(sizes) == {"MGT", f"VHD-{vhd}", f"LV-{raw}"}
    assert sizes["MGT"] == 8 * MiB
    (vg,) = thick_sr.lvm().vgs(["vg_tags"], thick_sr.vg)
    assert set(vg["vg_tags"].split(",")) == {"smapi", "provisioning=thick"}
    assert thick_sr.stat(raw)["virtual_size"] == 10 * MiB + 512
    assert thick_sr.read(raw, 0, 10 * MiB + 512) == bytes(10 * MiB + 512)  # zero-filled despite reused extents


def test_thick_reserves_the_full_size(thick_sr: LvmSR) -> None:
    vdi = thick_sr.vdi(256 * MiB)["vdi"]
    lv = thick_sr.lv_sizes()[f"VHD-{vdi}"]
    assert lv == thick_lv_size(256 * MiB, 4 * MiB) and lv >= 256 * MiB
    data = os.urandom(MiB)
    h = thick_sr.driver.open_vdi(thick_sr.sr, vdi, writable=True)
    for off in range(0, 256 * MiB, 32 * MiB):  # touch every part of the disk: no growth needed
        h.write(off, data)
    h.close()
    assert thick_sr.lv_sizes()[f"VHD-{vdi}"] == lv
    assert thick_sr.stat(vdi)["physical_utilisation"] == lv


def test_thin_grows_with_the_data_and_snapshot_deflates(thin_sr: LvmSR) -> None:
    vdi = thin_sr.vdi(GiB)["vdi"]
    assert thin_sr.lv_sizes()[f"VHD-{vdi}"] <= 8 * MiB
    data = os.urandom(4 * MiB)
    tenth = GiB // 10
    h = thin_sr.driver.open_vdi(thin_sr.sr, vdi, writable=True)
    for off in range(0, tenth, len(data)):  # ~10% of the disk, written in 4 MiB pieces
        h.write(off, data)
    h.close()
    last = (tenth - 1) // len(data) * len(data)
    grown = thin_sr.lv_sizes()[f"VHD-{vdi}"]
    assert tenth <= grown <= tenth + 24 * MiB, grown
    assert thin_sr.stat(vdi)["physical_utilisation"] == grown
    snap = thin_sr.snapshot(vdi)["vdi"]
    sizes = thin_sr.lv_sizes()
    base = [n for n in sizes if n not in ("MGT", f"VHD-{vdi}", f"VHD-{snap}")]
    assert len(base) == 1
    assert tenth <= sizes[base[0]] <= tenth + 8 * MiB  # the parent holds exactly its data, in whole extents
    assert sizes[f"VHD-{vdi}"] == sizes[f"VHD-{snap}"] == 4 * MiB  # empty children
    assert thin_sr.read(snap, 0, 4 * MiB) == data
    assert thin_sr.read(vdi, last, 4 * MiB) == data


def test_thick_snapshot_needs_room_for_one_leaf(make_loop: Callable[[int], str]) -> None:
    sr = make_sr([make_loop(700 * MiB)], "thick")
    vdi = sr.vdi(512 * MiB)["vdi"]
    sr.write(vdi, 0, os.urandom(8 * MiB))
    snap = sr.snapshot(vdi)["vdi"]  # the base is deflated before the new leaf exists
    sizes = sr.lv_sizes()
    assert sizes[f"VHD-{snap}"] == 4 * MiB
    sr.write(vdi, 100 * MiB, b"y" * MiB)  # the first write inflates the new leaf to its full size again
    assert sr.lv_sizes()[f"VHD-{vdi}"] == thick_lv_size(512 * MiB, 4 * MiB)


def test_space_accounting_matches_vgs_and_lvs(thin_sr: LvmSR) -> None:
    a = thin_sr.vdi(64 * MiB)["vdi"]
    thin_sr.write(a, 0, os.urandom(20 * MiB))
    (vg,) = thin_sr.lvm().vgs(["vg_size", "vg_free"], thin_sr.vg)
    st = thin_sr.v("SR.stat")
    assert (st["total_space"], st["free_space"]) == (int(vg["vg_size"]), int(vg["vg_free"]))
    assert thin_sr.stat(a)["physical_utilisation"] == thin_sr.lv_sizes()[f"VHD-{a}"]


def test_out_of_space_is_typed_and_loses_nothing(make_loop: Callable[[int], str]) -> None:
    sr = make_sr([make_loop(64 * MiB)], "thin")
    vdi = sr.vdi(256 * MiB)["vdi"]
    first = os.urandom(16 * MiB)
    sr.write(vdi, 0, first)
    with pytest.raises(Backend_error) as e:
        for off in range(16 * MiB, 256 * MiB, 16 * MiB):
            sr.write(vdi, off, os.urandom(16 * MiB))
    assert e.value.code == code("SRNoSpace")
    assert "free space" in e.value.message().lower()
    assert sr.read(vdi, 0, 16 * MiB) == first  # everything committed before is intact
    with pytest.raises(Backend_error) as e2:
        make_thick = sr.vdi(GiB)  # noqa: F841 - thick or raw would need it all; thin VHDs do not, raw does
        sr.vdi(GiB, sm_config={"type": "raw"})
    assert e2.value.code == code("SRNoSpace")


def test_thick_create_without_space_fails_cleanly(make_loop: Callable[[int], str]) -> None:
    sr = make_sr([make_loop(128 * MiB)], "thick")
    before = set(sr.lv_sizes())
    with pytest.raises(Backend_error) as e:
        sr.vdi(GiB)
    assert e.value.code == code("SRNoSpace")
    assert sr.v("SR.scan") == []  # the engine's journal removes the half-made LV at the next verb
    assert set(sr.lv_sizes()) == before


def test_probe_lists_volume_groups_and_srs(make_loop: Callable[[int], str], tmp_path, vg_name: str) -> None:
    a, b = make_loop(64 * MiB), make_loop(64 * MiB)
    sr = make_sr([a], "thin")
    sr.vdi(8 * MiB)
    foreign = Lvm([b], str(tmp_path / "lvm-etc"))
    foreign.run("pvcreate", "-y", b)
    foreign.run("vgcreate", vg_name, b)
    kind, found = sr.call("SR.probe", device_config={"device": f"{a},{b}"}, sm_config={})
    assert kind == "Probe"
    srs = [f for f in found if f["complete"]]
    others = [f for f in found if not f["complete"]]
    assert [f["sr"]["sr_uuid"] for f in srs] == [sr.sr]
    assert srs[0]["configuration"]["device"] == a and srs[0]["extra_info"]["vdis"] == "1"
    assert [f["extra_info"]["vg_name"] for f in others] == [vg_name]
    assert sr.call("SR.probe", device_config={"device": b}, sm_config={})[1][0].get("sr") is None


def test_create_refuses_used_devices_unless_forced(make_loop: Callable[[int], str], tmp_path, vg_name) -> None:
    pv, dirty = make_loop(64 * MiB), make_loop(64 * MiB)
    Lvm([pv], str(tmp_path / "lvm-etc")).run("pvcreate", "-y", pv)
    Lvm([pv], str(tmp_path / "lvm-etc")).run("vgcreate", vg_name, pv)
    fd = os.open(dirty, os.O_WRONLY)
    os.pwrite(fd, b"some file system", 4096)
    os.close(fd)
    for dev, why in ((pv, vg_name), (dirty, "first MiB")):
        client = LvmSR({"device": dev})
        with pytest.raises(Backend_error) as e:
            client.create()
        assert e.value.code == code("SRInUse") and why in e.value.message() and "force=true" in e.value.message()
    for dev in (pv, dirty):
        client = LvmSR({"device": dev, "force": "true"})
        client.create()
        client.attach()
        assert client.v("SR.scan") == []
    assert not any(r.get("vg_name") == vg_name for r in Lvm([pv], str(tmp_path / "lvm-etc")).pvs(["vg_name"]))


def test_bad_device_config(tmp_path) -> None:
    for dc, name in (({}, "ConfigDeviceMissing"), ({"device": str(tmp_path)}, "ConfigDeviceInvalid"),
                     ({"device": "/dev/nonexistent-smapi"}, "ConfigDeviceInvalid")):
        with pytest.raises(Backend_error) as e:
            LvmSR(dc).create()
        assert e.value.code == code(name)


def test_reattach_on_a_fresh_host_from_the_vg_alone(thin_sr: LvmSR, monkeypatch, tmp_path) -> None:
    vdi = thin_sr.vdi(32 * MiB, name_label="keep me")["vdi"]
    thin_sr.write(vdi, 3 * MiB, b"persisted")
    snap = thin_sr.snapshot(vdi)["vdi"]
    # another host: its own run directory, lvm.conf and (following the run directory) lock files
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "other-host"))
    monkeypatch.setenv("SMAPI_LVM_SYSTEM_DIR", str(tmp_path / "other-host" / "lvm-etc"))
    fresh = LvmSR({"device": thin_sr.device_config["device"]}, sr=thin_sr.sr)  # no provisioning given
    fresh.attach()
    scanned = {i["vdi"]: i for i in fresh.v("SR.scan")}
    assert set(scanned) == {vdi, snap} and scanned[vdi]["name_label"] == "keep me"
    assert fresh.read(snap, 3 * MiB, 9) == b"persisted"
    assert fresh.substrate().provisioning == "thin"  # remembered in the VG


def test_metadata_survives_a_torn_slot(thin_sr: LvmSR) -> None:
    vdi = thin_sr.vdi(8 * MiB, name_label="before")["vdi"]
    sub = thin_sr.substrate()
    extents = sub.access.extents("MGT")
    (current,) = [s for s in (0, 1) if _slot_seq(sub, s) == max(_slot_seq(sub, 0), _slot_seq(sub, 1))]
    # Tear the *next* write: the slot it would go to gets garbage in its payload.
    nxt = 1 - current
    fd = os.open(extents[0].pv, os.O_WRONLY)
    os.pwrite(fd, os.urandom(4096), extents[0].pv_offset + nxt * SLOT_SIZE + 256)
    os.close(fd)
    assert thin_sr.stat(vdi)["name_label"] == "before"  # the valid slot still answers
    thin_sr.v("VDI.set_name_label", vdi=vdi, new_name_label="after")
    assert thin_sr.stat(vdi)["name_label"] == "after"
    fd = os.open(extents[0].pv, os.O_WRONLY)  # tear the newest slot: the previous version comes back
    os.pwrite(fd, os.urandom(64), extents[0].pv_offset + nxt * SLOT_SIZE + HEADER_SIZE)
    os.close(fd)
    assert thin_sr.stat(vdi)["name_label"] == "before"


def _slot_seq(sub, slot: int) -> int:
    from smapi.drivers.lvm.mgt import decode_slot

    with sub._mgt()._open(False) as b:
        found = decode_slot(b.pread, slot * SLOT_SIZE)
    return found[0] if found else -1


def test_raw_vdi_resize_and_destroy(thick_sr: LvmSR) -> None:
    raw = thick_sr.vdi(6 * MiB, sm_config={"type": "raw"})["vdi"]
    thick_sr.write(raw, 6 * MiB - 4, b"tail")
    assert thick_sr.v("VDI.resize", vdi=raw, new_size=20 * MiB) == 20 * MiB
    assert thick_sr.read(raw, 6 * MiB - 4, 8) == b"tail" + bytes(4)
    assert thick_sr.lv_sizes()[f"LV-{raw}"] == 20 * MiB
    thick_sr.v("VDI.destroy", vdi=raw)
    assert f"LV-{raw}" not in thick_sr.lv_sizes()


def test_sr_destroy_removes_the_volume_group(thin_sr: LvmSR) -> None:
    thin_sr.vdi(8 * MiB)
    thin_sr.v("SR.destroy")
    lvm = Lvm(thin_sr.devices, os.environ["SMAPI_LVM_SYSTEM_DIR"])
    assert lvm.pvs(["pv_name", "vg_name"]) == []
