"""LVM VDIs through the datapath with real clients: qemu-io writes over NBD (or into the loop device a raw VDI is
handed as), then smapi's own reader and qemu-img (the VHD inside the LV, through a raw offset/size window on the
PV) must find exactly those bytes. Thin leaves are inflated while served and deflated after; nothing leaks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from smapi.drivers.lvm.provision import deflated_lv_size, thick_lv_size
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error
from tests.lvm.conftest import make_sr
from tests.lvm.helpers import LvmSR

MiB = 1 << 20
SIZE = 40 * MiB
#: (offset, length) of the writes: block-straddling, sector-sized and large
WRITES = ((0, 4096), (2 * MiB - 512, 1024), (5 * MiB + 512, 3 * MiB), (SIZE - 512, 512))

pytestmark = pytest.mark.skipif(shutil.which("qemu-io") is None or shutil.which("nbdkit") is None,
                                reason="needs qemu-io/qemu-img (qemu-utils) and nbdkit")


def code(name: str) -> str:
    return f"SR_BACKEND_FAILURE_{CLASSIC_CODES[name][0]}"


def our_nbdkits(run_dir: Path) -> List[int]:
    """nbdkit processes serving from this test's run directory."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"nbdkit") and any(str(run_dir).encode() in a for a in cmd):
                out.append(int(pid))
    return out


def loops_over(devices: List[str]) -> List[str]:
    """Loop devices whose backing is one of ``devices`` (our PVs): the ones a raw VDI is handed as."""
    out = []
    for name in os.listdir("/sys/block"):
        try:
            backing = Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
        except OSError:
            continue
        if backing in devices:
            out.append(f"/dev/{name}")
    return out


def qemu_io(target: str, *commands: str, readonly: bool = False) -> None:
    args = ["qemu-io", "-f", "raw"] + (["-r"] if readonly else [])
    for c in commands:
        args += ["-c", c]
    res = subprocess.run(args + [target], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "error" not in res.stdout.lower(), res.stdout + res.stderr


def write_through(target: str, tmp_path: Path) -> bytes:
    """WRITES made with qemu-io (data from files via a pattern per write); returns the expected disk."""
    expect = bytearray(SIZE)
    commands = []
    for i, (off, n) in enumerate(WRITES):
        pattern = 0x11 * (i + 1)
        commands.append(f"write -P {pattern} {off} {n}")
        expect[off : off + n] = bytes([pattern]) * n
    qemu_io(target, *commands, "flush")
    return bytes(expect)


def smapi_export(sr: LvmSR, vdi: str, path: Path) -> bytes:
    h = sr.driver.open_vdi(sr.sr, vdi)
    try:
        data = b"".join(bytes(h.read(off, min(4 * MiB, SIZE - off))) for off in range(0, SIZE, 4 * MiB))
    finally:
        h.close()
    path.write_bytes(data)
    return data


def lv_window(sr: LvmSR, lv: str) -> Tuple[str, int, int]:
    """(PV, offset, size) of a single-segment LV, for qemu's raw offset/size driver."""
    sub = sr.substrate()
    (extent,) = sub.access.extents(lv)  # type: ignore[attr-defined]
    return extent.pv, extent.pv_offset, extent.length


def qemu_compare(sr: LvmSR, lv: str, fmt: str, expected: Path) -> None:
    pv, offset, size = lv_window(sr, lv)
    inner = {"driver": "raw", "offset": offset, "size": size if fmt == "vhd" else SIZE,
             "file": {"driver": "host_device", "filename": pv}}
    target = {"driver": "vpc", "file": inner} if fmt == "vhd" else inner
    res = subprocess.run(["qemu-img", "compare", "-f", "vpc" if fmt == "vhd" else "raw", "-F", "raw",
                          "json:" + json.dumps(target), str(expected)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def attach(sr: LvmSR, vdi: str, dp: str = "dp1", rw: bool = True) -> Dict[str, str]:
    info = sr.v("VDI.attach", dp=dp, vdi=vdi, read_write=rw)
    sr.v("VDI.activate", dp=dp, vdi=vdi)
    return info


def release(sr: LvmSR, vdi: str, dp: str = "dp1") -> None:
    sr.v("VDI.deactivate", dp=dp, vdi=vdi)
    sr.v("VDI.detach", dp=dp, vdi=vdi)


@pytest.fixture(autouse=True)
def _stop_servers(make_loop: Callable[[int], str], tmp_path: Path) -> Iterator[None]:
    """A failing test still stops its servers and loop devices (before make_loop removes the PVs)."""
    yield
    from smapi.datapath import blockdev, teardown_all

    run = str(tmp_path / "run")
    teardown_all(run)
    for vdi in blockdev.recorded(run):
        blockdev.release(run, vdi)


@pytest.fixture
def nothing_leaks(tmp_path: Path) -> Callable[[LvmSR], None]:
    def check(sr: LvmSR) -> None:
        assert our_nbdkits(tmp_path / "run") == []
        assert loops_over(sr.devices) == []
    return check


@pytest.mark.parametrize("fmt", ["vhd", "raw"])
@pytest.mark.parametrize("provisioning", ["thick", "thin"])
def test_write_over_the_datapath_and_find_it_in_the_lv(provisioning: str, fmt: str, loop: str, tmp_path: Path,
                                                       nothing_leaks: Callable[[LvmSR], None]) -> None:
    sr = make_sr([loop], provisioning)
    fields = {"sm_config": {"type": "raw"}} if fmt == "raw" else {}
    vdi = sr.vdi(SIZE, **fields)["vdi"]
    lv = sr.lv_of(vdi)
    created = sr.lv_sizes()[lv]
    info = attach(sr, vdi)
    uri = info["xenstore_data"]["nbd-uri"]
    full = thick_lv_size(SIZE, sr.substrate().extent_size)
    if fmt == "vhd":
        assert info["params"] == info["params_nbd"]
        # A thin leaf is inflated before its server starts (the server never calls lvm); a thick one already is.
        assert sr.lv_sizes()[lv] == full
        if provisioning == "thin":
            assert created < full
            assert any(k.startswith("journal/inflate-") for k in sr.substrate().list_documents("journal/"))
        expect = write_through(uri, tmp_path)
    else:
        # One contiguous LV: handed out as a loop device over the PV region, from attach on.
        dev = info["params"]
        assert dev.startswith("/dev/loop") and loops_over(sr.devices) == [dev]
        assert int(Path(f"/sys/block/{os.path.basename(dev)}/size").read_text()) * 512 == SIZE
        expect = write_through(dev, tmp_path)
        qemu_io(uri, "read -P 0x22 {} {}".format(*WRITES[1]))  # the NBD export shows the same bytes
    release(sr, vdi)
    nothing_leaks(sr)
    assert sr.substrate().list_documents("journal/") == []
    if fmt == "vhd" and provisioning == "thin":
        with sr.substrate().open_volume(lv) as vol:  # closed: an open descriptor would pin the PV's loop device
            used = vol.physical_end()  # type: ignore[attr-defined]
        assert sr.lv_sizes()[lv] == deflated_lv_size(used, sr.substrate().extent_size) < full
    assert sr.stat(vdi)["physical_utilisation"] == sr.lv_sizes()[lv]
    exported = tmp_path / "export.raw"
    assert smapi_export(sr, vdi, exported) == expect
    qemu_compare(sr, lv, fmt, exported)


def test_multi_segment_raw_is_served_over_nbd(loop: str, tmp_path: Path,
                                              nothing_leaks: Callable[[LvmSR], None]) -> None:
    sr = make_sr([loop], "thick")
    vdi = sr.vdi(8 * MiB, sm_config={"type": "raw"})["vdi"]
    sr.vdi(8 * MiB, sm_config={"type": "raw"})  # its neighbour: growing the first one makes a second segment
    sr.v("VDI.resize", vdi=vdi, new_size=SIZE)
    assert len(sr.substrate().access.extents(sr.lv_of(vdi))) == 2  # type: ignore[attr-defined]
    info = attach(sr, vdi)
    assert info["params"] == info["params_nbd"] and info["o_direct"] is False
    assert loops_over(sr.devices) == []
    expect = write_through(info["xenstore_data"]["nbd-uri"], tmp_path)
    release(sr, vdi)
    nothing_leaks(sr)
    assert smapi_export(sr, vdi, tmp_path / "export.raw") == expect


def test_read_only_reader_and_snapshot_chain(loop: str, tmp_path: Path,
                                             nothing_leaks: Callable[[LvmSR], None]) -> None:
    """Parents are resolved as LVs of the VG inside the server; a snapshot of an active thin leaf deflates the
    base and the new leaf is inflated again for the restarted server."""
    sr = make_sr([loop], "thin")
    vdi = sr.vdi(SIZE)["vdi"]
    uri = attach(sr, vdi)["xenstore_data"]["nbd-uri"]
    expect = write_through(uri, tmp_path)
    snap = sr.snapshot(vdi)["vdi"]
    sizes = sr.lv_sizes()
    full = thick_lv_size(SIZE, sr.substrate().extent_size)
    assert sizes[sr.lv_of(vdi)] == full  # the restarted server's new leaf
    base = [n for n in sizes if n not in ("MGT", sr.lv_of(vdi), sr.lv_of(snap))]
    assert len(base) == 1 and sizes[base[0]] < full
    qemu_io(uri, "write -P 0x77 0 512", "flush")
    reader = sr.v("VDI.attach", dp="ro", vdi=snap, read_write=False)
    sr.v("VDI.activate", dp="ro", vdi=snap)
    qemu_io(reader["xenstore_data"]["nbd-uri"], "read -P 0x11 0 4096", "read -P 0x33 {} {}".format(*WRITES[2]),
            readonly=True)
    release(sr, snap, "ro")
    release(sr, vdi)
    nothing_leaks(sr)
    assert smapi_export(sr, snap, tmp_path / "snap.raw") == expect
    assert sr.read(vdi, 0, 512) == b"\x77" * 512


def test_crashed_server_is_deflated_by_the_next_scan(loop: str, tmp_path: Path) -> None:
    sr = make_sr([loop], "thin")
    vdi = sr.vdi(SIZE)["vdi"]
    lv = sr.lv_of(vdi)
    created = sr.lv_sizes()[lv]
    attach(sr, vdi)
    (pid,) = our_nbdkits(tmp_path / "run")
    os.kill(pid, signal.SIGKILL)  # the host "crashes" with the leaf inflated and journaled
    sr.v("SR.scan")
    assert sr.lv_sizes()[lv] == created
    assert sr.substrate().list_documents("journal/") == []
    attach(sr, vdi)  # activate again (idempotent): a new server on a re-inflated leaf
    assert sr.lv_sizes()[lv] == thick_lv_size(SIZE, sr.substrate().extent_size)
    release(sr, vdi)
    assert sr.lv_sizes()[lv] == created


def test_no_room_to_inflate_is_typed_and_loses_nothing(make_loop: Callable[[int], str], tmp_path: Path) -> None:
    sr = make_sr([make_loop(64 * MiB)], "thin")
    vdi = sr.vdi(256 * MiB)["vdi"]
    sr.write(vdi, MiB, b"kept" * 1024)
    sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)
    with pytest.raises(Backend_error) as e:
        sr.v("VDI.activate", dp="dp1", vdi=vdi)
    assert e.value.code == code("SRNoSpace")
    assert our_nbdkits(tmp_path / "run") == []
    sr.v("VDI.detach", dp="dp1", vdi=vdi)
    assert sr.substrate().list_documents("journal/") == []
    assert sr.read(vdi, MiB, 4096) == b"kept" * 1024
    ro = sr.v("VDI.attach", dp="ro", vdi=vdi, read_write=False)  # a reader needs no room
    sr.v("VDI.activate", dp="ro", vdi=vdi)
    qemu_io(ro["xenstore_data"]["nbd-uri"], f"read -P 0 0 {MiB}", readonly=True)
    release(sr, vdi, "ro")


def test_thin_lv_holds_what_was_written_through_the_datapath(make_loop: Callable[[int], str], tmp_path: Path,
                                                             nothing_leaks: Callable[[LvmSR], None]) -> None:
    """10% of a 1 GiB thin VDI written by a client over NBD: ~10% of LV once the datapath is gone."""
    gib = 1 << 30
    sr = make_sr([make_loop(2 * gib)], "thin")
    vdi = sr.vdi(gib)["vdi"]
    lv = sr.lv_of(vdi)
    uri = attach(sr, vdi)["xenstore_data"]["nbd-uri"]
    assert sr.lv_sizes()[lv] == thick_lv_size(gib, sr.substrate().extent_size)
    tenth = gib // 10
    qemu_io(uri, f"write -P 0x5a 0 {tenth}", "flush")
    release(sr, vdi)
    nothing_leaks(sr)
    grown = sr.lv_sizes()[lv]
    assert tenth <= grown <= tenth + 8 * MiB, grown
    assert sr.stat(vdi)["physical_utilisation"] == grown
    (vg,) = sr.lvm().vgs(["vg_size", "vg_free"], sr.vg)
    st = sr.v("SR.stat")
    assert (st["total_space"], st["free_space"]) == (int(vg["vg_size"]), int(vg["vg_free"]))
    assert sr.read(vdi, tenth - 4096, 8192) == b"\x5a" * 4096 + bytes(4096)


def test_loop_devices_go_with_sr_detach_and_stale_cleanup(loop: str, tmp_path: Path,
                                                          nothing_leaks: Callable[[LvmSR], None]) -> None:
    sr = make_sr([loop], "thick")
    a = sr.vdi(8 * MiB, sm_config={"type": "raw"})["vdi"]
    b = sr.vdi(8 * MiB, sm_config={"type": "raw"})["vdi"]
    dev_a = sr.v("VDI.attach", dp="dp1", vdi=a, read_write=True)["params"]
    assert sr.v("VDI.attach", dp="dp2", vdi=a, read_write=True)["params"] == dev_a  # one device per VDI
    sr.v("VDI.detach", dp="dp1", vdi=a)
    assert loops_over(sr.devices) == [dev_a]  # dp2 still holds it
    sr.v("VDI.detach", dp="dp2", vdi=a)
    assert loops_over(sr.devices) == []
    dev_a = sr.v("VDI.attach", dp="dp1", vdi=a, read_write=True)["params"]
    sr.v("VDI.attach", dp="dp1", vdi=b, read_write=False)
    assert len(loops_over(sr.devices)) == 2
    reader = sr.v("VDI.attach", dp="dp2", vdi=a, read_write=False)["params"]  # a reader joining the writer
    assert reader != dev_a and Path(f"/sys/block/{os.path.basename(reader)}/ro").read_text().strip() == "1"
    assert len(loops_over(sr.devices)) == 3
    sr.v("SR.detach")
    nothing_leaks(sr)
    sr.attach()
    sr.v("VDI.attach", dp="dp1", vdi=b, read_write=True)
    # A verb killed after making the device but before recording its datapath: the next SR.attach finds it.
    states = tmp_path / "run" / "dp" / sr.sr / f"{b}.json"
    assert states.exists()
    states.unlink()
    sr.attach()
    nothing_leaks(sr)


def test_resizing_a_raw_vdi_served_as_a_loop_device_is_refused_until_detached(
        loop: str, nothing_leaks: Callable[[LvmSR], None]) -> None:
    """The loop device over the PV region keeps the size it was made with: growing the LV under it would hand the
    consumer a device over the old region (and a grown LV may not stay contiguous). Typed refusal, nothing changed."""
    sr = make_sr([loop], "thick")
    vdi = sr.vdi(8 * MiB, sm_config={"type": "raw"})["vdi"]
    dev = sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)["params"]
    assert dev.startswith("/dev/loop")
    lv_before = sr.lv_sizes()[sr.lv_of(vdi)]
    with pytest.raises(Backend_error) as e:
        sr.v("VDI.resize", vdi=vdi, new_size=16 * MiB)
    assert e.value.code == code("VDIInUse") and dev in e.value.message()
    assert sr.stat(vdi)["virtual_size"] == 8 * MiB and sr.lv_sizes()[sr.lv_of(vdi)] == lv_before
    assert sr.substrate().list_documents("journal/") == []
    sr.v("VDI.detach", dp="dp1", vdi=vdi)
    assert sr.v("VDI.resize", vdi=vdi, new_size=16 * MiB) == 16 * MiB
    dev = sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)["params"]
    assert int(Path(f"/sys/block/{os.path.basename(dev)}/size").read_text()) * 512 == 16 * MiB
    sr.v("VDI.detach", dp="dp1", vdi=vdi)
    nothing_leaks(sr)


def test_the_opener_resolves_parents_inside_the_vg_only(loop: str) -> None:
    from smapi.drivers.lvm.serving import open_for_datapath
    from smapi.vhd import ParentNotFound, open_chain

    sr = make_sr([loop], "thin")
    vdi = sr.vdi(8 * MiB)["vdi"]
    sr.write(vdi, 0, b"base" * 128)
    sr.snapshot(vdi)
    spec = sr.substrate().datapath_image(sr.lv_of(vdi), "vhd")
    assert spec.opener and spec.path.startswith("lvm://") and spec.block is None
    leaf, resolver = open_for_datapath(spec.opener_args(), writable=False)
    assert resolver is not None
    try:
        chain = open_chain(leaf, resolver=resolver)
        assert len(chain.images) == 2 and chain.read(0, 512) == b"base" * 128
        chain.close()
    finally:
        leaf.close()
    for name in ("../../etc/passwd", loop, "MGT", "VG_other/VHD-x", f"VHD-{'0' * 36}"):
        with pytest.raises(ParentNotFound):
            resolver.open_parent(name)
    raw = sr.vdi(4 * MiB, sm_config={"type": "raw"})["vdi"]
    spec = sr.substrate().datapath_image(sr.lv_of(raw), "raw")
    assert spec.block is not None and spec.block[0] == loop and spec.block[2] == 4 * MiB
    leaf, resolver = open_for_datapath(spec.opener_args(), writable=False)
    assert resolver is None and leaf.size() == 4 * MiB
    leaf.close()


_VERB_IN_A_CHILD = """
import sys
from smapi.core.driver import load_driver
sr, vdi, verb = sys.argv[1:4]
load_driver("lvm").call("storage", verb, dbg="t", sr=sr, dp="dp1", vdi=vdi)
"""


def _killed_at(step: str, sr: LvmSR, vdi: str, verb: str) -> None:
    import sys

    env = {**os.environ, "SMAPI_FAULT": f"inflate.{step}"}
    res = subprocess.run([sys.executable, "-c", _VERB_IN_A_CHILD, sr.sr, vdi, verb], env=env, capture_output=True,
                         text=True, cwd=str(Path(__file__).resolve().parents[2]))
    assert res.returncode == 9, f"not killed at {step}: {res.returncode} {res.stderr[-2000:]}"


@pytest.mark.parametrize("step,verb", [("journaled", "VDI.activate"), ("inflated", "VDI.activate"),
                                       ("stopped", "VDI.deactivate"), ("deflated", "VDI.deactivate")])
def test_a_verb_killed_around_inflate_or_deflate_is_recovered(step: str, verb: str, loop: str,
                                                              tmp_path: Path) -> None:
    sr = make_sr([loop], "thin")
    vdi = sr.vdi(SIZE)["vdi"]
    lv = sr.lv_of(vdi)
    sr.write(vdi, 3 * MiB, b"kept" * 1024)
    created = sr.lv_sizes()[lv]
    sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)
    if verb == "VDI.deactivate":
        sr.v("VDI.activate", dp="dp1", vdi=vdi)
        assert sr.lv_sizes()[lv] > created
    _killed_at(step, sr, vdi, verb)
    assert our_nbdkits(tmp_path / "run") == []
    assert sr.substrate().list_documents("journal/") == [f"journal/inflate-{vdi}"]
    sr.v("SR.scan")  # the next verb replays the entry: no server holds the leaf, so it is deflated
    assert sr.substrate().list_documents("journal/") == []
    assert sr.lv_sizes()[lv] == created
    assert sr.read(vdi, 3 * MiB, 4096) == b"kept" * 1024
    sr.v("VDI.activate", dp="dp1", vdi=vdi)  # and the datapath works again
    assert sr.lv_sizes()[lv] > created
    release(sr, vdi)
    assert sr.lv_sizes()[lv] == created and sr.substrate().list_documents("journal/") == []


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3 (the one nbdkit embeds)")
def test_the_opener_imports_under_the_system_python_without_site_packages() -> None:
    """nbdkit's Python plugin runs the system interpreter, not the virtualenv: the opener may need only the standard
    library and smapi itself (-S: no site-packages at all)."""
    root = str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.insert(0, {root!r}); import smapi.drivers.lvm.serving as s; print(s.OPENER)"
    res = subprocess.run(["/usr/bin/python3", "-S", "-c", code], capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "smapi.drivers.lvm.serving:open_for_datapath"
