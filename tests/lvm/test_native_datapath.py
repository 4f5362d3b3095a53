"""The native plugin on LVM volumes (no device-mapper: it does its own I/O on the PVs through each LV's segment map)
against the reference, the Python plugin over the Python VHD library on an identical VDI: the same random NBD
operations go to both; bytes read, the VDIs' contents, the leaf's allocation and bitmaps must agree, and the leaf the
C code wrote must pass ``check``. Leaves of snapshot chains are inflated when served, so they usually span several
segments (the other VDI's LVs lie behind them)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import smapi.vhd as vhd
from smapi.datapath import native
from smapi.vhd import constants as C
from tests.datapath.nativelib import draw_rounds, require_native, run_rounds
from tests.lvm.conftest import make_sr
from tests.lvm.helpers import LvmSR

MiB = 1 << 20
BLOCK = 2 * MiB

pytestmark = pytest.mark.skipif(shutil.which("nbdkit") is None, reason="needs nbdkit")


@pytest.fixture(autouse=True)
def _stop_servers(tmp_path: Path) -> Iterator[None]:
    yield
    from smapi.datapath import teardown_all

    teardown_all(str(tmp_path / "run"))


@pytest.fixture
def sr(loop: str) -> LvmSR:
    require_native()
    return make_sr([loop], "thick")


def build(sr: LvmSR, size: int, depth: int, seed: int) -> str:
    """A VDI whose leaf has ``depth - 1`` ancestors; each level gets a few random writes (aligned and not)."""
    rnd = random.Random(seed)
    vdi = str(sr.vdi(size)["vdi"])
    for level in range(depth):
        if level:
            sr.snapshot(vdi)  # vdi stays the writable leaf, over a new hidden parent
        h = sr.driver.open_vdi(sr.sr, vdi, writable=True)
        try:
            for _ in range(rnd.randrange(1, 3)):
                off = rnd.randrange(size)
                h.write(off, rnd.randbytes(min(rnd.choice([512, 4096, 70000, BLOCK]), size - off)))
        finally:
            h.close()
    return vdi


def serve(sr: LvmSR, vdi: str, monkeypatch: pytest.MonkeyPatch, engine: str, direct: bool,
          rw: bool = True) -> Tuple[str, List[str]]:
    """Attach and activate with ``engine``; returns the NBD URI and the server's command line."""
    with monkeypatch.context() as m:
        m.setenv(native.ENV_SWITCH, "python" if engine == native.PYTHON else "")
        m.setenv(native.ENV_DIRECT, "1" if direct else "")
        info = sr.v("VDI.attach", dp=f"dp-{vdi}", vdi=vdi, read_write=rw)
        sr.v("VDI.activate", dp=f"dp-{vdi}", vdi=vdi)
    uri = info["xenstore_data"]["nbd-uri"]
    cmdline = server_cmdline(uri)
    assert any(a.endswith(".so") for a in cmdline) == (engine == native.NATIVE), cmdline
    return uri, cmdline


def server_cmdline(uri: str) -> List[str]:
    sock = uri.split("socket=", 1)[1]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if args and args[0].endswith("nbdkit") and sock in args:
                return args
    raise AssertionError(f"no nbdkit serving {sock}")


def leaf_runs(cmdline: List[str]) -> int:
    """How many map= runs the plugin was given for the leaf (those between image= and the first parent=)."""
    start = next(i for i, a in enumerate(cmdline) if a.startswith("image="))
    n = 0
    for a in cmdline[start + 1:]:
        if not a.startswith("map="):
            break
        n += 1
    return n


def release(sr: LvmSR, vdi: str) -> None:
    sr.v("VDI.deactivate", dp=f"dp-{vdi}", vdi=vdi)
    sr.v("VDI.detach", dp=f"dp-{vdi}", vdi=vdi)


def contents(sr: LvmSR, vdi: str, size: int) -> bytes:
    h = sr.driver.open_vdi(sr.sr, vdi)
    try:
        return b"".join(bytes(h.read(off, min(4 * MiB, size - off))) for off in range(0, size, 4 * MiB))
    finally:
        h.close()


def leaf_state(sr: LvmSR, vdi: str) -> Tuple[Dict[int, bytes], bool, List[str]]:
    """(allocated blocks -> sector bitmap, check passed, check errors) of the VDI's leaf LV."""
    with sr.substrate().open_volume(sr.lv_of(vdi)) as vol:
        with vhd.open_image(vol) as img:
            alloc = {b: bytes(img.bitmap(b)) for b, e in enumerate(img.bat) if e != C.BAT_UNUSED}
        rep = vhd.check(vol, check_parents=False)
    return alloc, rep.ok, list(rep.errors)


@st.composite
def scenarios(draw: st.DrawFn) -> Tuple[int, int, int, int, bool, List[list]]:
    size = draw(st.integers(2, 5)) * BLOCK
    rounds = draw_rounds(draw, size, "wwwWrrzf", 5)
    return size, draw(st.integers(1, 3)), draw(st.integers(0, 2**31)), draw(st.integers(1, 4)), draw(st.booleans()), \
        rounds


@settings(max_examples=int(os.environ.get("SMAPI_NATIVE_LVM_EXAMPLES", "6")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
# always: a depth-3 chain (a multi-segment leaf) under O_DIRECT, allocating, rewriting, zeroing and reading
@example(scenario=(2 * BLOCK, 3, 1, 2, True, [[["w", 0, 4096, 1], ["W", BLOCK + 512, 8192, 2]],
                                              [["z", 4096, 8192], ["r", 0, 2 * BLOCK]], [["f"]]]))
def test_native_on_lvm_matches_python(scenario: Tuple[int, int, int, int, bool, List[list]], sr: LvmSR,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    size, depth, seed, conns, direct, rounds = scenario
    nat, ref = build(sr, size, depth, seed), build(sr, size, depth, seed)
    try:
        nat_uri, cmdline = serve(sr, nat, monkeypatch, native.NATIVE, direct)
        assert sum(a.startswith("map=") for a in cmdline) >= depth  # every image of the chain on its devices
        if depth > 1:  # the leaf was inflated when served, past the LVs of `ref`: it spans several segments
            assert leaf_runs(cmdline) > 1, cmdline
        got = run_rounds(nat_uri, conns, rounds)
        ref_uri, _ = serve(sr, ref, monkeypatch, native.PYTHON, False)
        want = run_rounds(ref_uri, 1, rounds)
    finally:
        for v in (nat, ref):
            with contextlib.suppress(Exception):  # not attached (a failure above): the fixture stops servers
                release(sr, v)
    assert got == want
    assert contents(sr, nat, size) == contents(sr, ref, size)
    nat_alloc, ok, errors = leaf_state(sr, nat)
    assert ok, errors
    assert nat_alloc == leaf_state(sr, ref)[0]
    for v in (nat, ref):
        sr.v("VDI.destroy", vdi=v)


def test_foreign_footer_at_the_lv_end_is_not_trusted(sr: LvmSR, monkeypatch: pytest.MonkeyPatch) -> None:
    """An LV whose last sector holds another image's footer (reused extents, a resize that died before the copy
    was refreshed): the native server, read-only so nothing repairs it first, goes by the backup footer at 0 as
    the driver's volume does, and serves the right size and bytes."""
    vdi, other = build(sr, 4 * BLOCK, 1, 7), build(sr, 3 * BLOCK, 1, 8)
    before = contents(sr, vdi, 4 * BLOCK)
    sub = sr.substrate()
    (dev, off, length), *_ = reversed(sub._open_raw(sr.lv_of(vdi), False).device_extents() or [])  # noqa: SLF001
    odev, ooff, _ = (sub._open_raw(sr.lv_of(other), False).device_extents() or [])[0]  # noqa: SLF001
    src, dst = os.open(odev, os.O_RDONLY), os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(dst, os.pread(src, 512, ooff), off + length - 512)  # the other VDI's backup footer
    finally:
        os.close(src)
        os.close(dst)
    uri, _ = serve(sr, vdi, monkeypatch, native.NATIVE, False, rw=False)
    try:
        got = run_rounds(uri, 1, [[["r", 0, 4 * BLOCK]]])
    finally:
        release(sr, vdi)
    assert got == [hashlib.sha256(before).hexdigest()]
