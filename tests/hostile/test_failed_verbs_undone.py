"""A verb that fails for lack of space leaves the SR exactly as before the call, and no later replay finishes it.

On a small tmpfs and a loop-mounted ext4, a filler file leaves `room` bytes free, for growing `room`, so that the
verb fails at every step it can fail at (journal entry, image growth, child creation, copy, SR document commit),
until it works. After each failure the SR must equal its state before the call -- volumes, visible VDIs, their
sizes and contents, no journal entry -- and must still equal it after space returns and a scan replays the
journal (the replay must not roll forward what the caller was told had failed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from smapi.interface.errors import Backend_error, Internal_error, SmapiError
from tests.hostile.test_disk_full import SR, MiB, Sr
from tests.hostile.test_disk_full import small_fs as small_fs  # a fixture

KiB = 1 << 10
ROOMS = [0, 4 * KiB, 8 * KiB, 12 * KiB, 16 * KiB, 24 * KiB, 32 * KiB, 48 * KiB, 64 * KiB, 96 * KiB, 128 * KiB,
         192 * KiB, 256 * KiB, 512 * KiB, MiB, 2 * MiB, 4 * MiB, 6 * MiB, 10 * MiB]


def state(sr: Sr) -> Dict[str, Any]:
    """What a caller (and the next replay) can see of the SR."""
    vdis = {}
    for info in sr.call("SR.scan", sr=SR):
        size = info["virtual_size"]
        handle = sr.driver.open_vdi(SR, info["vdi"])
        try:
            assert handle.size == size, f"VDI {info['vdi']}: stat says {size} bytes, the data path {handle.size}"
        finally:
            handle.close()
        vdis[info["vdi"]] = (size, info["name_label"], sr.read(info["vdi"], size))
    volumes = sorted(p.name for p in sr.path.iterdir() if not p.name.startswith(".") and p.is_file())
    return {"vdis": vdis, "volumes": volumes}


def journal(sr: Sr) -> List[str]:
    return sorted(os.listdir(sr.path / ".journal"))


def leave_room(fs: Path, room: int) -> None:
    """A filler file taking all but about `room` bytes of the file system."""
    with open(fs / "filler", "ab") as filler:
        while True:
            st = os.statvfs(fs)
            free = st.f_bavail * st.f_frsize
            if free <= room:
                return
            try:
                filler.write(b"\0" * min(free - room, 4 * MiB))
                filler.flush()
                os.fsync(filler.fileno())
            except OSError:
                return


def sweep(sr: Sr, fs: Path, verb: Callable[[], Any]) -> Tuple[List[str], Any]:
    """Run `verb` with more and more room until it works; check every failure undid itself. Returns the
    failures' messages and the verb's result."""
    failures: List[str] = []
    for room in ROOMS:
        before = state(sr)
        leave_room(fs, room)
        try:
            result = verb()
        except SmapiError as e:
            assert not isinstance(e, Internal_error), f"room {room}: {e}"
            failures.append(f"{room}: {e}")
            assert journal(sr) == [], f"room {room}: {e}: a journal entry outlived the failed call"
            os.unlink(fs / "filler")
            assert state(sr) == before, f"room {room}: {e}: the failed call left a change"
            sr.call("SR.scan", sr=SR)  # replays whatever is left: it must not finish the failed call
            assert state(sr) == before, f"room {room}: {e}: replay rolled the failed call forward"
            continue
        os.unlink(fs / "filler")
        return failures, result
    raise AssertionError(f"the verb never worked, even with {ROOMS[-1]} bytes free: {failures[-1:]}")


@pytest.fixture
def sr(small_fs, tmp_path, monkeypatch):
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SMAPI_GC", "off")
    target = Sr(small_fs / "sr")
    config = {"path": str(target.path)}
    target.call("SR.create", sr=SR, device_config=config, physical_size=0)
    target.call("SR.attach", sr=SR, device_config=config)
    yield target
    target.call("SR.detach", sr=SR)


def _vdi(sr: Sr, name: str, size: int = 4 * MiB, **sm_config: str) -> str:
    vdi = sr.call("VDI.create", sr=SR, vdi_info={"virtual_size": size, "name_label": name,
                                                 "sm_config": sm_config})["vdi"]
    sr.fill(vdi, min(size, 2 * MiB))
    return vdi


@pytest.mark.parametrize("fmt", ["vhd", "raw"])
def test_failed_resize_keeps_the_old_size(sr, small_fs, fmt):
    vdi = _vdi(sr, "grown", **({"type": "raw"} if fmt == "raw" else {}))
    failures, size = sweep(sr, small_fs, lambda: sr.call("VDI.resize", sr=SR, vdi=vdi, new_size=12 * MiB))
    assert failures and size >= 12 * MiB
    assert sr.call("VDI.stat", sr=SR, vdi=vdi)["virtual_size"] == size


@pytest.mark.parametrize("kind", ["VDI.snapshot", "VDI.clone"])
@pytest.mark.parametrize("fmt", ["vhd", "raw"])
def test_failed_snapshot_or_clone_leaves_no_trace(sr, small_fs, kind, fmt):
    vdi = _vdi(sr, "source", **({"type": "raw"} if fmt == "raw" else {}))
    failures, made = sweep(sr, small_fs, lambda: sr.call(kind, sr=SR, vdi_info={"vdi": vdi,
                                                                                "virtual_size": 4 * MiB}))
    assert failures
    assert _content(sr, made["vdi"]) == _content(sr, vdi)


@pytest.mark.parametrize("vdi2_has_parent", [False, True], ids=["rebased", "reparented"])
def test_failed_compose_leaves_both_vdis(sr, small_fs, vdi2_has_parent):
    vdi1 = _vdi(sr, "one")
    vdi2 = sr.call("VDI.create", sr=SR, vdi_info={"virtual_size": 4 * MiB, "name_label": "two"})["vdi"]
    if vdi2_has_parent:  # a differencing leaf over a hidden base copy: compose re-parents it
        snap = sr.call("VDI.snapshot", sr=SR, vdi_info={"vdi": vdi2, "virtual_size": 4 * MiB})["vdi"]
        sr.call("VDI.destroy", sr=SR, vdi=snap)
    handle = sr.driver.open_vdi(SR, vdi2, writable=True)
    try:
        handle.write(MiB, b"\x42" * 8192)
    finally:
        handle.close()
    failures, _ = sweep(sr, small_fs, lambda: sr.call("VDI.compose", sr=SR, vdi1=vdi1, vdi2=vdi2))
    assert failures
    one = bytearray(_content(sr, vdi1))
    one[MiB:MiB + 8192] = b"\x42" * 8192
    assert bytes(one) == _content(sr, vdi2)


def _content(sr: Sr, vdi: str) -> bytes:
    handle = sr.driver.open_vdi(SR, vdi)
    try:
        return handle.read(0, 4 * MiB)
    finally:
        handle.close()


@pytest.mark.parametrize("fmt", ["raw", "vhd"])
@pytest.mark.parametrize("vdi_format", ["vhd", "raw"])
def test_failed_import_leaves_the_vdi_unchanged(sr, small_fs, tmp_path, fmt, vdi_format):
    """`smapi vdi-import` lands through an upload scratch: a failure for lack of space, wherever it comes (the
    scratch, making room for the copy, the acceptance), is a typed error with the VDI as before; none of the
    input is visible and no later replay finishes it."""
    from click.testing import CliRunner

    from smapi.cli.main import cli

    if fmt == "vhd" and shutil.which("qemu-img") is None:
        pytest.skip("qemu-img makes the VHD input")
    vdi = _vdi(sr, "target", **({"type": "raw"} if vdi_format == "raw" else {}))
    raw = tmp_path / "input.raw"
    raw.write_bytes(os.urandom(4 * MiB))
    source = raw
    if fmt == "vhd":
        source = tmp_path / "input.vhd"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", str(raw),
                        str(source)], check=True, capture_output=True, timeout=60)

    def run() -> None:
        result = CliRunner().invoke(cli, ["vdi-import", "-d", "file", "--sr", SR, "--format", fmt, "--no-progress",
                                          vdi, str(source)])
        if result.exit_code:
            assert result.exception is None or isinstance(result.exception, SystemExit), result.output
            assert "insufficient space" in result.output, result.output
            raise Backend_error("SR_BACKEND_FAILURE_44", ["", result.output, ""])

    failures, _ = sweep(sr, small_fs, run)
    assert failures
    assert _content(sr, vdi) == raw.read_bytes()


def test_failed_http_put_leaves_the_vdi_unchanged(sr, small_fs, tmp_path):
    """A whole-disk PUT to an exposed VDI on a full SR: 507 and the VDI as before (read back through the same
    exposure), no journal entry or scratch left; with room, the same PUT lands whole."""
    if shutil.which("curl") is None:
        pytest.skip("curl sends the PUT")
    from tests.transfer.conftest import Service, curl, status_of

    vdi = _vdi(sr, "exposed")
    before = _content(sr, vdi)
    body = tmp_path / "body"
    body.write_bytes(os.urandom(4 * MiB))
    service = Service()
    try:
        ex = service.expose(vdi)
        statuses = []
        for room in ROOMS:
            leave_room(small_fs, room)
            status = status_of(curl("--digest", "-u", ex.user, "-T", str(body), ex.url))
            statuses.append(status)
            os.unlink(small_fs / "filler")
            now = curl("--digest", "-u", ex.user, ex.url, check=True).stdout
            if status == 200:
                assert now == body.read_bytes()
                break
            assert status == 507, statuses
            assert now == before, f"room {room}: a failed PUT changed the VDI"
            assert journal(sr) == [] and not [p for p in sr.path.iterdir() if "upload-" in p.name]
        assert statuses[0] == 507 and statuses[-1] == 200, statuses
    finally:
        service.close()
