"""What the SR owns and what it follows: symlinked volumes are refused, SR.destroy removes only the SR's own
volumes, a relative SR path keeps working from another directory, and transfer binds every interface only when
asked to."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from smapi.cli.main import cli
from smapi.interface.errors import Backend_error, Internal_error, SmapiError
from tests.hostile.conftest import MiB


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _volume(attached) -> str:
    return os.path.join(attached.device_config["path"], attached.vdi + ".vhd")


@pytest.fixture
def symlinked(attached):
    """The VDI's volume replaced by a symlink to a (valid) VHD outside the SR."""
    volume = _volume(attached)
    outside = attached.arena.canary / "target.vhd"
    shutil.copyfile(volume, outside)
    os.unlink(volume)
    os.symlink(outside, volume)
    return outside


def test_symlinked_volume_is_refused_for_every_access(attached, symlinked):
    before = _digest(symlinked)
    for method, args in (("VDI.resize", {"vdi": attached.vdi, "new_size": 4 * MiB}),
                         ("VDI.attach", {"dp": "d", "vdi": attached.vdi, "read_write": True}),
                         ("VDI.get_url", {"vdi": attached.vdi}),
                         ("VDI.snapshot", {"vdi_info": {"vdi": attached.vdi, "virtual_size": MiB}})):
        with pytest.raises(SmapiError) as info:
            attached.call(method, sr=attached.sr, **args)
        assert isinstance(info.value, Backend_error) and not isinstance(info.value, Internal_error), info.value
        assert "symlink" in info.value.message(), info.value
    from smapi.core.driver import load_driver

    with pytest.raises(SmapiError) as info:
        load_driver("file").open_vdi(attached.sr, attached.vdi, writable=True)
    assert "symlink" in info.value.message()
    assert _digest(symlinked) == before
    assert os.path.islink(_volume(attached))


def test_sr_destroy_removes_only_what_the_sr_owns(attached):
    sr_dir = attached.device_config["path"]
    foreign = {name: f"not the SR's: {name}\n".encode() for name in ("admin.vhd", "notes.raw", "keep.txt")}
    for name, data in foreign.items():
        with open(os.path.join(sr_dir, name), "wb") as f:
            f.write(data)
    second = attached.call("VDI.create", sr=attached.sr, vdi_info={"virtual_size": MiB})["vdi"]
    outside = attached.arena.outside()
    attached.call("SR.destroy", sr=attached.sr)
    left = sorted(os.listdir(sr_dir))
    assert left == sorted(foreign), left  # the SR's volumes, document, journal and locks are gone; nothing else
    for name, data in foreign.items():
        assert Path(sr_dir, name).read_bytes() == data
    assert not any(v in n for n in left for v in (attached.vdi, second))
    assert attached.arena.outside() == outside


def test_relative_sr_path_is_recorded_absolute(attached, tmp_path, monkeypatch):
    monkeypatch.chdir(attached.arena.root / "pool")
    config = {"path": "relative-sr"}
    sr = "5a1b0a2e-0000-4000-8000-000000000001"
    attached.call("SR.create", sr=sr, device_config=config, physical_size=0)
    attached.call("SR.attach", sr=sr, device_config=config)
    made = attached.call("VDI.create", sr=sr, vdi_info={"virtual_size": MiB})
    monkeypatch.chdir(tmp_path)  # another working directory: later verbs still find the SR
    assert [v["vdi"] for v in attached.call("SR.scan", sr=sr)] == [made["vdi"]]
    assert os.path.isfile(attached.arena.root / "pool" / "relative-sr" / (made["vdi"] + ".vhd"))


def test_smapiv3_sr_create_returns_an_absolute_path(attached, tmp_path, monkeypatch):
    """SMAPIv3's SR.create returns the configuration the toolstack keeps (its PBD): the path in it is absolute."""
    from smapi.core.driver import load_driver

    monkeypatch.chdir(attached.arena.root / "pool")
    v3 = load_driver("file").dispatcher("v3")
    sr = "5a1b0a2e-0000-4000-8000-000000000002"
    stored = v3.call("SR.create", {"dbg": "t", "uuid": sr, "configuration": {"path": "relative-v3"}, "name": "n",
                                   "description": ""})
    assert stored["path"] == str(attached.arena.root / "pool" / "relative-v3"), stored
    monkeypatch.chdir(tmp_path)  # the PBD is used from elsewhere: attach, create a volume, detach
    assert v3.call("SR.attach", {"dbg": "t", "configuration": stored}) == sr
    v3.call("Volume.create", {"dbg": "t", "sr": sr, "name": "v", "description": "", "size": MiB,
                              "sharable": False})
    assert len(v3.call("SR.ls", {"dbg": "t", "sr": sr})) == 1
    v3.call("SR.detach", {"dbg": "t", "sr": sr})


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_transfer_expose_every_interface_needs_listen_all(address):
    result = CliRunner().invoke(cli, ["transfer", "expose", "http", "00000000-0000-0000-0000-000000000001",
                                      "--ip", address, "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "--listen-all" in result.output, result.output
