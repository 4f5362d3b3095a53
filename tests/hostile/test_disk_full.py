"""A full disk is an outcome, not a wedge: on a small tmpfs and on a loop-mounted ext4, filled with VDIs and a
filler file, every verb gives a typed error or works (reads, scan, destroy), known VDIs stay intact, and once
space returns everything works again with no temporary files left."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from smapi.core.driver import load_driver
from smapi.interface.errors import Internal_error, SmapiError

MiB = 1 << 20
SR = "5a1b0a2e-0000-4000-8000-00000000f011"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture(params=["tmpfs", "ext4"])
def small_fs(request, tmp_path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if request.param == "tmpfs":
        _run("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt))
    else:
        if shutil.which("mkfs.ext4") is None:
            pytest.skip("mkfs.ext4 is not installed")
        image = tmp_path / "fs.img"
        with open(image, "wb") as f:
            f.truncate(32 * MiB)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
        _run("mount", "-o", "loop", str(image), str(mnt))  # the loop device is freed at umount (autoclear)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60).returncode:
            # Still busy (a failing test left a file open): detach it now, the kernel frees it when closed.
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Sr:
    def __init__(self, path: Path) -> None:
        self.driver = load_driver("file")
        self.dispatcher = self.driver.dispatcher("storage")
        self.path = path

    def call(self, method: str, **args: Any) -> Any:
        return self.dispatcher.call(method, {"dbg": "full", **args})

    def fill(self, vdi: str, size: int) -> str:
        data = os.urandom(size)
        handle = self.driver.open_vdi(SR, vdi, writable=True)
        try:
            handle.write(0, data)
            handle.flush()
        finally:
            handle.close()
        return _digest(data)

    def read(self, vdi: str, size: int) -> str:
        handle = self.driver.open_vdi(SR, vdi)
        try:
            return _digest(handle.read(0, size))
        finally:
            handle.close()


def _typed_or_works(target: Sr, method: str, **args: Any) -> Any:
    try:
        return target.call(method, **args)
    except SmapiError as e:
        assert not isinstance(e, Internal_error), f"{method}: {e}"
        return e


def _leftovers(path: Path) -> list:
    return [str(p) for p in path.rglob("*") if ".tmp." in p.name]


def test_full_sr_stays_usable(small_fs, tmp_path, monkeypatch):
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SMAPI_GC", "off")
    sr = Sr(small_fs / "sr")
    config = {"path": str(sr.path)}
    sr.call("SR.create", sr=SR, device_config=config, physical_size=0)
    sr.call("SR.attach", sr=SR, device_config=config)
    known: Dict[str, str] = {}
    for _ in range(2):
        vdi = sr.call("VDI.create", sr=SR, vdi_info={"virtual_size": 4 * MiB, "name_label": "known"})["vdi"]
        known[vdi] = sr.fill(vdi, 4 * MiB)
    # Reads zeros, allocates nothing: imports into it need space the full SR does not have.
    empty = sr.call("VDI.create", sr=SR, vdi_info={"virtual_size": 4 * MiB, "name_label": "empty"})["vdi"]
    known[empty] = _digest(bytes(4 * MiB))
    # Fill it: imports until one fails, then a filler file for the last bytes.
    imports = []
    for _ in range(10):
        made = _typed_or_works(sr, "VDI.create", sr=SR, vdi_info={"virtual_size": 4 * MiB, "name_label": "import"})
        if isinstance(made, SmapiError):
            break
        imports.append(made["vdi"])
        try:
            sr.fill(made["vdi"], 4 * MiB)
        except OSError:
            break
    first = next(iter(known))
    with pytest.raises(OSError), open(small_fs / "filler", "wb") as filler:
        # Almost full first: a resize whose journal entry fits but whose image growth does not (undone at once).
        room = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
        if room > 256 * 1024:
            filler.write(b"\0" * (room - 64 * 1024))
            filler.flush()
        _typed_or_works(sr, "VDI.resize", sr=SR, vdi=first, new_size=2000 << 30)
        while True:
            filler.write(b"\0" * MiB)
            filler.flush()
            os.fsync(filler.fileno())
    # Full: every verb gives a typed error or works, and leaves no journal entry behind.
    _every_verb_while_full(sr, first, known)
    _imports_while_full(sr, empty, tmp_path)
    scanned = {v["vdi"] for v in sr.call("SR.scan", sr=SR)}
    assert set(known) <= scanned
    for vdi, digest in known.items():
        assert sr.read(vdi, 4 * MiB) == digest
        assert sr.call("VDI.stat", sr=SR, vdi=vdi)["virtual_size"] >= 4 * MiB
    # Destroying frees space even on a full SR.
    for info in sr.call("SR.scan", sr=SR):  # what stat says is what the data path serves
        handle = sr.driver.open_vdi(SR, info["vdi"])
        try:
            assert handle.size == info["virtual_size"], info
        finally:
            handle.close()
    victims = imports or [v for v in scanned if v not in known]
    for vdi in victims:
        sr.call("VDI.destroy", sr=SR, vdi=vdi)
    assert not {v["vdi"] for v in sr.call("SR.scan", sr=SR)} & set(victims)
    # Space returns: everything works again, nothing is left behind.
    os.unlink(small_fs / "filler")
    snap = sr.call("VDI.snapshot", sr=SR, vdi_info={"vdi": first, "virtual_size": 4 * MiB})
    assert sr.read(snap["vdi"], 4 * MiB) == known[first]
    sr.call("VDI.resize", sr=SR, vdi=first, new_size=128 * MiB)
    sr.call("SR.scan", sr=SR)
    for vdi, digest in known.items():
        assert sr.read(vdi, 4 * MiB) == digest
    assert _leftovers(sr.path) == []
    assert os.listdir(sr.path / ".journal") == []
    sr.call("SR.detach", sr=SR)


def _every_verb_while_full(sr: Sr, first: str, known: Dict[str, str]) -> None:
    """Every storage verb of the file SR on the full SR: a typed error or a result, never a journal entry left."""
    config = {"path": str(sr.path)}
    dp = "full-dp"
    calls = [("Query.query", {}), ("Query.diagnostics", {}), ("SR.ls", {}), ("SR.stat", {"sr": SR}),
             ("SR.scan", {"sr": SR}), ("SR.probe", {"device_config": config, "sm_config": {}}),
             ("SR.set_name_label", {"sr": SR, "new_name_label": "full"}),
             ("SR.set_name_description", {"sr": SR, "new_name_description": "full"}),
             ("VDI.stat", {"sr": SR, "vdi": first}), ("VDI.get_by_name", {"sr": SR, "name": first}),
             ("VDI.similar_content", {"sr": SR, "vdi": first}), ("VDI.get_url", {"sr": SR, "vdi": first}),
             ("VDI.set_name_label", {"sr": SR, "vdi": first, "new_name_label": "renamed"}),
             ("VDI.set_name_description", {"sr": SR, "vdi": first, "new_name_description": "d"}),
             ("VDI.set_content_id", {"sr": SR, "vdi": first, "content_id": "c"}),
             ("VDI.add_to_sm_config", {"sr": SR, "vdi": first, "key": "k", "value": "v"}),
             ("VDI.remove_from_sm_config", {"sr": SR, "vdi": first, "key": "k"}),
             ("VDI.snapshot", {"sr": SR, "vdi_info": {"vdi": first, "virtual_size": 4 * MiB}}),
             ("VDI.clone", {"sr": SR, "vdi_info": {"vdi": first, "virtual_size": 4 * MiB}}),
             ("VDI.resize", {"sr": SR, "vdi": first, "new_size": 64 * MiB}),
             ("VDI.compose", {"sr": SR, "vdi1": first, "vdi2": list(known)[1]}),
             ("VDI.copy", {"sr": SR, "vdi": first, "url": "", "dest": SR}),
             ("VDI.create", {"sr": SR, "vdi_info": {"virtual_size": 4 * MiB}}),
             ("VDI.create", {"sr": SR, "vdi_info": {"virtual_size": 4 * MiB, "sm_config": {"type": "raw"}}}),
             ("VDI.set_persistent", {"sr": SR, "vdi": first, "persistent": False}),
             ("VDI.epoch_begin", {"sr": SR, "vdi": first}), ("VDI.epoch_end", {"sr": SR, "vdi": first}),
             ("VDI.set_persistent", {"sr": SR, "vdi": first, "persistent": True}),
             ("VDI.attach", {"sr": SR, "dp": dp, "vdi": first, "read_write": True}),
             ("VDI.activate", {"sr": SR, "dp": dp, "vdi": first}),
             ("VDI.deactivate", {"sr": SR, "dp": dp, "vdi": first}),
             ("VDI.detach", {"sr": SR, "dp": dp, "vdi": first}),
             ("SR.reset", {"sr": SR}), ("SR.detach", {"sr": SR}), ("SR.attach", {"sr": SR, "device_config": config})]
    for method, args in calls:
        outcome = _typed_or_works(sr, method, **args)
        assert os.listdir(sr.path / ".journal") == [], f"{method} ({outcome}) left a journal entry"


def _imports_while_full(sr: Sr, empty: str, tmp_path: Path) -> None:
    """An import and a write API call into a VDI with no room: typed errors; the import leaves no byte behind."""
    from click.testing import CliRunner

    from smapi.cli.main import cli

    source = tmp_path / "input.raw"
    source.write_bytes(os.urandom(4 * MiB))
    result = CliRunner().invoke(cli, ["vdi-import", "-d", "file", "--sr", SR, "--format", "raw", "--no-progress",
                                      empty, str(source)])
    assert result.exit_code == 1 and "insufficient space" in result.output, result.output
    assert sr.read(empty, 4 * MiB) == _digest(bytes(4 * MiB)), "a failed import left some of its bytes"
    handle = sr.driver.open_vdi(SR, empty, writable=True)
    try:
        with pytest.raises(SmapiError) as failed:
            handle.write(0, os.urandom(4 * MiB))  # a plain write is not atomic (a disk's is not): only typed
            handle.flush()
        assert isinstance(failed.value, OSError) and failed.value.errno == errno.ENOSPC  # e.g. for a FUSE server
        assert "insufficient space" in str(failed.value)
    finally:
        with contextlib.suppress(OSError):  # closing flushes the image's metadata, which may need space too
            handle.close()
