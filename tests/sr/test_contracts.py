"""The contracts the engine is written against: `Substrate` and `Backing` are abstract base classes whose
required members every implementation provides, and whose optional capabilities have declared defaults."""

from __future__ import annotations

import inspect

import pytest

from smapi.drivers.lvm.rawlv import RawLv
from smapi.drivers.lvm.segmap import SegmentMapBacking
from smapi.drivers.lvm.shared import SharedVolumeGroupSubstrate
from smapi.drivers.lvm.substrate import VolumeGroupSubstrate
from smapi.drivers.nfs.substrate import NfsSubstrate
from smapi.sr.directory import DirectorySubstrate
from smapi.sr.substrate import Substrate
from smapi.vhd import Backing, FileBacking, MemoryBacking

OPTIONAL_SUBSTRATE = {"sweep_temp_files", "refresh", "datapath_image", "prepares_writers", "writer_needs_preparation",
                      "prepare_writer", "finish_writer", "reserve_path", "local_lock_dir", "prepare_activation",
                      "activation_lease", "active_elsewhere"}


def test_a_substrate_missing_a_required_member_cannot_be_made() -> None:
    class Half(Substrate):
        def exists(self) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


def test_the_optional_substrate_members_are_exactly_the_non_abstract_ones() -> None:
    public = {n for n, v in vars(Substrate).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert public - Substrate.__abstractmethods__ == OPTIONAL_SUBSTRATE
    assert "lock" in Substrate.__abstractmethods__ and "store_document" in Substrate.__abstractmethods__


@pytest.mark.parametrize("cls", [DirectorySubstrate, NfsSubstrate, VolumeGroupSubstrate, SharedVolumeGroupSubstrate])
def test_every_substrate_is_complete(cls: type) -> None:
    assert issubclass(cls, Substrate) and not inspect.isabstract(cls)


def test_the_default_capabilities_are_those_of_a_plain_substrate(tmp_path) -> None:
    sub = DirectorySubstrate(str(tmp_path))
    assert not sub.prepares_writers() and not sub.writer_needs_preparation("a.vhd", "vhd")
    assert sub.reserve_path() == str(tmp_path / ".reserve") and sub.local_lock_dir() == str(tmp_path / ".locks")


@pytest.mark.parametrize("cls", [FileBacking, MemoryBacking, SegmentMapBacking])
def test_every_backing_is_complete(cls: type) -> None:
    assert issubclass(cls, Backing) and not inspect.isabstract(cls)
    assert {"pread", "pwrite", "size", "resize"} <= Backing.__abstractmethods__


def test_a_raw_lv_adds_zeroing_and_a_resize_that_may_skip_it() -> None:
    assert {"zero", "resize"} <= RawLv.__abstractmethods__ and issubclass(SegmentMapBacking, RawLv)
    with MemoryBacking(b"abc") as m:  # the context manager keeps the backing's own type
        assert m.buf == bytearray(b"abc")
