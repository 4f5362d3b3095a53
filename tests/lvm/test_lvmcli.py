"""lvm2 through its command line: private configuration, JSON reports, typed errors with lvm's own message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smapi.drivers.lvm.lvmcli import Lvm, classify, lvm_conf, meaningful_lines, parse_report
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error

MiB = 1 << 20


def code(name: str) -> str:
    return f"SR_BACKEND_FAILURE_{CLASSIC_CODES[name][0]}"


def test_private_config_is_used_and_host_etc_untouched(lvm: Lvm, vg: str, tmp_path: Path) -> None:
    conf = (tmp_path / "lvm-etc" / "lvm.conf").read_text()
    assert conf == lvm_conf(lvm.activation)
    assert "activation = 0" in conf  # no device-mapper on CI machines
    before = sorted(os.listdir("/etc/lvm/backup")) if os.path.isdir("/etc/lvm/backup") else []
    lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "8m", "-n", "x", vg)
    after = sorted(os.listdir("/etc/lvm/backup")) if os.path.isdir("/etc/lvm/backup") else []
    assert vg not in after and before == after


def test_reports_are_json_with_byte_sizes(lvm: Lvm, vg: str, loop: str) -> None:
    lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "12m", "-n", "a", "--addtag", "t1", vg)
    (row,) = lvm.vgs(["vg_name", "vg_size", "vg_free", "vg_extent_size", "vg_extent_count", "vg_free_count"], vg)
    ext = int(row["vg_extent_size"])
    assert ext == 4 * MiB
    assert int(row["vg_size"]) == int(row["vg_extent_count"]) * ext
    assert int(row["vg_free"]) == int(row["vg_free_count"]) * ext == int(row["vg_size"]) - 12 * MiB
    (lv,) = lvm.lvs(["lv_name", "lv_size", "lv_tags"], vg)
    assert lv == {"lv_name": "a", "lv_size": str(12 * MiB), "lv_tags": "t1"}
    (pv,) = lvm.pvs(["pv_name", "vg_name", "pe_start"])
    assert pv["pv_name"] == loop and pv["vg_name"] == vg and int(pv["pe_start"]) % 512 == 0


def test_devices_restricts_what_lvm_sees(make_loop, tmp_path: Path, vg_name: str) -> None:
    a, b = make_loop(64 * MiB), make_loop(64 * MiB)
    Lvm([a], str(tmp_path / "lvm-etc")).run("pvcreate", "-y", a)
    Lvm([b], str(tmp_path / "lvm-etc")).run("pvcreate", "-y", b)
    assert [r["pv_name"] for r in Lvm([a], str(tmp_path / "lvm-etc")).pvs(["pv_name"])] == [a]
    both = Lvm([a, b], str(tmp_path / "lvm-etc"))
    assert sorted(r["pv_name"] for r in both.pvs(["pv_name"])) == sorted([a, b])


def test_no_space_is_srnospace_with_lvms_message(lvm: Lvm, vg: str) -> None:
    with pytest.raises(Backend_error) as e:
        lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "100g", "-n", "big", vg)
    assert e.value.code == code("SRNoSpace")
    assert "insufficient free space" in e.value.message().lower()
    assert "Activation disabled" not in e.value.message()  # expected warnings are filtered out


def test_missing_vg_is_srunavailable(lvm: Lvm) -> None:
    with pytest.raises(Backend_error) as e:
        lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "8m", "-n", "x", "VG_does_not_exist")
    assert e.value.code == code("SRUnavailable")
    assert "VG_does_not_exist" in e.value.message()


def test_existing_lv_is_lvmcreate(lvm: Lvm, vg: str) -> None:
    lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "8m", "-n", "x", vg)
    with pytest.raises(Backend_error) as e:
        lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "8m", "-n", "x", vg)
    assert e.value.code == code("LVMCreate")
    assert "already exists" in e.value.message()


def test_resize_beyond_the_vg_is_srnospace(lvm: Lvm, vg: str) -> None:
    lvm.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "8m", "-n", "x", vg)
    with pytest.raises(Backend_error) as e:
        lvm.run("lvresize", "-f", "-L", "100g", f"{vg}/x")
    assert e.value.code == code("SRNoSpace")


def test_device_that_is_not_a_block_device(tmp_path: Path) -> None:
    plain = tmp_path / "plain.img"
    plain.write_bytes(bytes(MiB))
    with pytest.raises(Backend_error) as e:
        Lvm([str(plain)], str(tmp_path / "lvm-etc")).run("pvcreate", "-y", str(plain))
    assert e.value.code == code("ConfigDeviceInvalid")


def test_missing_pv_is_srunavailable(make_loop, tmp_path: Path, vg_name: str) -> None:
    a, b = make_loop(64 * MiB), make_loop(64 * MiB)
    both = Lvm([a, b], str(tmp_path / "lvm-etc"))
    both.run("pvcreate", "-y", a, b)
    both.run("vgcreate", vg_name, a, b)
    only_a = Lvm([a], str(tmp_path / "lvm-etc"))  # b "disappeared"
    with pytest.raises(Backend_error) as e:
        only_a.run("lvcreate", "-an", "-Zn", "-Wn", "-L", "8m", "-n", "x", vg_name)
    assert e.value.code == code("SRUnavailable")


@pytest.mark.parametrize("command,lines,expected", [
    ("lvcreate", ["Volume group \"v\" has insufficient free space (3 extents): 25 required."], "SRNoSpace"),
    ("lvextend", ["Insufficient suitable allocatable extents for logical volume x"], "SRNoSpace"),
    ("vgs", ["Volume group \"v\" not found", "Cannot process volume group v"], "SRUnavailable"),
    ("lvs", ["WARNING: Couldn't find device with uuid abc."], "SRUnavailable"),
    ("pvcreate", ["No device found for /dev/nope."], "ConfigDeviceInvalid"),
    ("lvcreate", ["Global lock failed: check that global lockspace is started"], "LockErr"),
    ("lvcreate", ["Logical volume name \"-x\" is invalid."], "LVMCreate"),
    ("vgcreate", ["Can't get lock for VG_x"], "LockErr"),
    ("lvremove", ["something unexpected"], "LVMDelete"),
])
def test_classify(command: str, lines: list, expected: str) -> None:
    assert classify(command, lines) == expected


def test_noise_filter_and_report_parsing() -> None:
    stderr = ("  WARNING: Activation disabled. No device-mapper interaction will be attempted.\n"
              "  WARNING: Logical volume VG/x not zeroed.\n  Real problem here\n")
    assert meaningful_lines(stderr) == ["Real problem here"]
    assert parse_report('{"report": [{"lv": [{"lv_name": "a"}, {"lv_name": "b"}]}]}') == [
        {"lv_name": "a"}, {"lv_name": "b"}]
    assert parse_report("") == []


def _recording_lvm(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every lvm argv instead of running it (answers an empty report): safe whatever the code under test
    would have done to the machine's volume groups."""
    from smapi.common import commands

    calls: list = []
    real = commands.run

    def fake(argv, *a, **kw):  # type: ignore[no-untyped-def]
        if argv and argv[0] == "lvm":
            calls.append(list(argv))
            return commands.CommandResult(argv, 0, '{"report": [{"pv": []}]}', "", 0.0)
        return real(argv, *a, **kw)

    monkeypatch.setattr(commands, "run", fake)
    return calls


def test_an_empty_device_list_never_runs_an_unrestricted_lvm(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """Regression (CI: "Volume group VG_XenStorage-... not found" mid-test): a fixture that made no loop device
    called remove_lvm_state([]), and Lvm([]) ran without --devices, so lvm scanned every loop device on the machine
    and ``vgremove -ff``/``pvremove -ff`` destroyed the volume groups of tests running in other workers."""
    from smapi.drivers.lvm.loopdev import SparseLoop
    from tests.lvm.factory import remove_lvm_state

    calls = _recording_lvm(monkeypatch)
    remove_lvm_state([], str(tmp_path / "lvm-etc"))
    with SparseLoop(str(tmp_path / "gone.img"), MiB) as gone:
        pass  # detached: its number may belong to anybody now
    remove_lvm_state([gone], str(tmp_path / "lvm-etc"))
    with pytest.raises(Backend_error) as e:
        Lvm([], str(tmp_path / "lvm-etc")).run("pvs")
    assert e.value.code == code("ConfigDeviceMissing")
    with pytest.raises(Backend_error):
        Lvm(["", ""], str(tmp_path / "lvm-etc"))
    assert calls == []


def test_every_lvm_command_names_its_devices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _recording_lvm(monkeypatch)
    Lvm(["/dev/loop-a", "/dev/loop-b"], str(tmp_path / "lvm-etc")).pvs(["pv_name"])
    assert calls and all(c[2:4] == ["--devices", "/dev/loop-a,/dev/loop-b"] for c in calls)
