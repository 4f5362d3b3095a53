"""Upload scratches (`smapi.sr.scratch`): an upload's writes reach the VDI all at once at commit or never.

The crash tests run the uploader in a child process that dies (os._exit) at the interesting moment; the next
SR.scan must drop an upload that was not accepted and finish one that was, and leave no scratch behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterator

import pytest

from tests.sr.drivers import file_sr_factory
from tests.sr.helpers import FileSR, MiB, pattern, sha

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 6 * MiB + 1024  # not a whole number of blocks: the last block is partial


@pytest.fixture
def fsr(tmp_path, monkeypatch) -> Iterator[FileSR]:
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    sr = FileSR(sut.device_config["path"])
    sr.create_sr()
    sr.attach()
    yield sr
    sut.cleanup()


def _scratches(fsr: FileSR) -> list:
    return [n for n in os.listdir(fsr.path) if n.startswith("upload-")]


def _writes():
    """(offset, data) pairs with unaligned edges, one crossing a block boundary, one at the very end."""
    return [(7, pattern("a", 1000)), (2 * MiB - 300, pattern("b", 5000)), (SIZE - 700, pattern("c", 700)),
            (4 * MiB, pattern("d", MiB))]


@pytest.mark.parametrize("fmt", ["vhd", "raw"])
def test_commit_applies_exactly_the_bytes_written_and_discard_none(fsr: FileSR, fmt: str) -> None:
    vdi = fsr.create(SIZE, sm_config={"type": fmt} if fmt == "raw" else {})
    base = pattern("base", SIZE)
    fsr.write(vdi, 0, base)
    model = bytearray(base)
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
        dropped = h.upload_scratch()
        dropped.write(0, b"\xff" * 4096)
        dropped.discard()
        assert _scratches(fsr) == [] and h.read(0, 4096) == base[:4096]

        sc = h.upload_scratch()
        for off, data in _writes():
            sc.write(off, data)
            model[off:off + len(data)] = data
        # Before commit the VDI is untouched, while the scratch reads as the upload would leave it.
        assert h.read(0, SIZE) == base
        assert sc.read(2 * MiB - 301, 5002) == bytes(model[2 * MiB - 301: 2 * MiB + 4701])
        sc.commit()
        assert h.read(0, SIZE) == bytes(model)
    assert _scratches(fsr) == []
    assert sha(fsr.read_all(vdi)) == sha(bytes(model))
    fsr.assert_consistent()


CHILD = r"""
import os, sys
from smapi.core.driver import load_driver
from tests.sr.helpers import pattern
MiB = 1 << 20
mode, sr, vdi = sys.argv[1:4]
driver = load_driver("smapi.drivers.file:FileDriver")
h = driver.open_vdi(sr, vdi, writable=True)
sc = h.upload_scratch()
sc.write(7, pattern("x", 3 * MiB))
if mode == "receive":
    os._exit(3)                      # dies while the body is still arriving


class Dying:
    # Lets the room-making pass and the first write of the copy through, then dies half-way through the copy.
    def __init__(self):
        self.n = 0

    def write(self, off, data):
        if h.read(off, len(data)) == data:  # making room for the copy (the VDI's own bytes): not the copy yet
            h.write(off, data)
            return
        if self.n:
            os._exit(4)
        self.n += 1
        h.write(off, data[:512])     # and even that write only partly

    def read(self, off, n):
        return h.read(off, n)

    def flush(self):
        pass


sc.target = Dying()
sc.commit()
"""


@pytest.mark.parametrize("mode", ["receive", "commit"])
def test_a_dead_uploader_is_dropped_or_finished_by_the_next_scan(fsr: FileSR, mode: str) -> None:
    vdi = fsr.create(SIZE)
    base = pattern("base", SIZE)
    fsr.write(vdi, 0, base)
    root = ROOT
    child = subprocess.run([sys.executable, "-c", CHILD, mode, fsr.sr, vdi], cwd=root, capture_output=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": root})
    assert child.returncode == (3 if mode == "receive" else 4), child.stderr.decode()[-2000:]
    assert len(_scratches(fsr)) == 1

    fsr.v("SR.scan")
    assert _scratches(fsr) == []
    expected = bytearray(base)
    if mode == "commit":  # accepted before the crash: recovery finishes the copy
        expected[7:7 + 3 * MiB] = pattern("x", 3 * MiB)
    assert sha(fsr.read_all(vdi)) == sha(bytes(expected))
    fsr.assert_consistent()


def test_a_live_upload_is_left_alone_by_another_process(fsr: FileSR) -> None:
    vdi = fsr.create(SIZE)
    root = ROOT
    scan = ("import sys; from tests.sr.helpers import FileSR; FileSR(sys.argv[1]).v('SR.scan')")
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
        sc = h.upload_scratch()
        sc.write(0, b"live" * 128)
        subprocess.run([sys.executable, "-c", scan, fsr.path], cwd=root, check=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": root})
        assert len(_scratches(fsr)) == 1, "another process's recovery removed a live upload"
        sc.commit()
        assert h.read(0, 4) == b"live"
    assert _scratches(fsr) == []


@pytest.mark.parametrize("in_place", [False, True], ids=["copy", "in-place"])
@pytest.mark.parametrize("name", ["lvm", "lvm-thin"])
def test_scratches_on_lvm(tmp_path, monkeypatch, name: str, in_place: bool) -> None:
    """The scratch is a volume of the SR's own substrate: on LVM an LV that grows as the upload writes. Landing
    in place is lvrenames: replace of the parentless leaf, relink (the leaf LV becomes the upload base), then
    replace of the differencing leaf (whole-disk uploads)."""
    from smapi.core.driver import load_driver
    from tests.sr.drivers import FACTORIES

    if name not in FACTORIES:
        pytest.skip(f"{name} SRs are not available here (lvm2, loop devices)")
    sut = FACTORIES[name](tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    sr = "5c7a7c4e-0000-4000-8000-00000000005c"
    try:
        driver = load_driver(sut.driver_spec)
        d = driver.dispatcher("storage")

        def call(verb: str, **args):
            return d.call(verb, {"dbg": "tests/sr", **args})

        call("SR.create", sr=sr, device_config=sut.device_config, physical_size=0)
        call("SR.attach", sr=sr, device_config=sut.device_config)
        vdi = call("VDI.create", sr=sr, vdi_info={"virtual_size": SIZE})["vdi"]
        model = bytearray(SIZE)
        if in_place:
            from smapi.sr import scratch

            monkeypatch.setenv(scratch.RELINK_ENV, "1")

        def depth() -> int:
            return driver.engine_for(sr).load().depth(vdi)

        with driver.open_vdi(sr, vdi, writable=True) as h:
            if in_place:  # a whole-disk upload over the parentless leaf: it takes the leaf's place, depth 1
                first = h.upload_scratch()
                model[:] = pattern("first", SIZE)
                first.write(0, bytes(model))
                first.commit()
                assert depth() == 1 and sha(h.read(0, SIZE)) == sha(bytes(model))
            before = bytes(model)
            sc = h.upload_scratch()
            for off, data in _writes():
                sc.write(off, data)
                model[off:off + len(data)] = data
            assert h.read(0, SIZE) == before
            sc.commit()
            assert depth() == (2 if in_place else 1)
            assert sha(h.read(0, SIZE)) == sha(bytes(model))
            if in_place:
                whole = h.upload_scratch()
                model[:] = pattern("whole", SIZE)
                whole.write(0, bytes(model))
                whole.commit()
                assert depth() == 2 and sha(h.read(0, SIZE)) == sha(bytes(model))
            gone = h.upload_scratch()
            gone.write(0, b"\x01" * 512)
            gone.discard()
        with driver.open_vdi(sr, vdi) as h:
            assert sha(h.read(0, SIZE)) == sha(bytes(model))
        engine = driver.engine_for(sr)  # a new verb: the handle's engine changed LVs (LVM caches per verb)
        assert not [v for v in engine.substrate.list_volumes() if "upload-" in v]
        assert engine.journal.pending() == []
        driver.engine_for(sr).gc()
        assert depth() == 1
        engine = driver.engine_for(sr)
        with driver.open_vdi(sr, vdi) as h:
            assert sha(h.read(0, SIZE)) == sha(bytes(model))
        assert sorted(engine.substrate.list_volumes()) == sorted(r.volume for r in engine.load().vdis.values())
        call("SR.detach", sr=sr)
    finally:
        sut.cleanup()


# ------------------------------------------------------------------------------------------------ in place
def _chain(fsr: FileSR, vdi: str) -> list:
    """The VDI's chain from the SR document, leaf first: [(volume, name_label), ...]."""
    doc = fsr.document()
    out = [(doc.vdis[vdi].volume, doc.vdis[vdi].name_label)]
    out += [(doc.vdis[u].volume, doc.vdis[u].name_label) for u in doc.ancestors(vdi)]
    return out


def test_large_uploads_land_in_place_and_the_chain_stays_bounded(fsr: FileSR, monkeypatch) -> None:
    """Above the threshold a VHD upload becomes the leaf (relink) or replaces it (whole-disk over a differencing
    leaf); the handle reads the new chain at once; stacked upload bases stop at MAX_UPLOAD_BASES (then: copy);
    closing the handle tells the collector, which merges everything."""
    from smapi.sr import relink, scratch

    monkeypatch.setenv(scratch.RELINK_ENV, "1")
    vdi = fsr.create(SIZE)
    leaf_volume = fsr.document().vdis[vdi].volume
    model = bytearray(pattern("base", SIZE))
    fsr.write(vdi, 0, bytes(model))
    assert len(_chain(fsr, vdi)) == 1
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
        def upload(writes) -> None:
            sc = h.upload_scratch()
            for off, data in writes:
                sc.write(off, data)
                model[off:off + len(data)] = data
            assert sc.commit() > 0
            assert sha(h.read(0, SIZE)) == sha(bytes(model)), "the handle reads the landed upload"

        upload(_writes())  # partial, over a dynamic leaf: relink
        chain = _chain(fsr, vdi)
        assert [c[1] for c in chain[1:]] == [relink.UPLOAD_BASE] and chain[0][0] == leaf_volume
        upload([(0, pattern("whole", SIZE))])  # covers the differencing leaf: replace, the chain does not grow
        assert _chain(fsr, vdi)[1:] == chain[1:]
        for i in range(3):  # partial uploads: one more relink, then copies
            upload([(MiB * i + 3, pattern(f"p{i}", MiB))])
        assert [c[1] for c in _chain(fsr, vdi)[1:]] == [relink.UPLOAD_BASE] * relink.MAX_UPLOAD_BASES
        assert _scratches(fsr) == []
        fsr.assert_consistent()
    # Closing the handle told the collector (SMAPI_GC=sync here: it ran in close()), which merged the bases.
    assert len(_chain(fsr, vdi)) == 1
    assert sha(fsr.read_all(vdi)) == sha(bytes(model))
    fsr.assert_consistent()


@pytest.mark.parametrize("fmt", ["vhd", "raw"])
def test_a_whole_disk_upload_replaces_a_parentless_leaf(fsr: FileSR, monkeypatch, fmt: str) -> None:
    """A whole-disk upload over a dynamic leaf: the scratch loses its parent and takes the leaf's place (no upload
    base, nothing for the collector to merge). A raw VDI's upload is copied (no VHD can take its place)."""
    from smapi.sr import scratch
    from smapi.vhd import info

    monkeypatch.setenv(scratch.RELINK_ENV, "1")
    vdi = fsr.create(SIZE, sm_config={"type": fmt} if fmt == "raw" else {})
    fsr.write(vdi, MiB, pattern("old", 3 * MiB))
    body = pattern("new", SIZE)
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
        sc = h.upload_scratch()
        sc.write(0, body)
        sc.commit()
        assert sha(h.read(0, SIZE)) == sha(body)
    assert len(_chain(fsr, vdi)) == 1 and _scratches(fsr) == []
    if fmt == "vhd":
        meta = info(os.path.join(fsr.path, fsr.document().vdis[vdi].volume), count_blocks=False)
        assert meta.parent_name is None and meta.disk_type == "dynamic"
        raw = os.path.join(fsr.path, "..", "expected.raw")
        with open(raw, "wb") as f:
            f.write(body)
        leaf = os.path.join(fsr.path, fsr.document().vdis[vdi].volume)
        r = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", leaf, raw], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stdout + r.stderr  # another VHD reader agrees
    assert sha(fsr.read_all(vdi)) == sha(body)
    fsr.assert_consistent()


def test_small_uploads_raw_and_reset_on_boot_vdis_are_copied(fsr: FileSR) -> None:
    from smapi.sr import scratch

    assert scratch.relink_min() >= 16 * MiB  # the default: a few MiB are cheaper to copy than to relink
    vdi = fsr.create(SIZE)
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
        sc = h.upload_scratch()
        sc.write(0, pattern("small", 2 * MiB))
        sc.commit()
    assert len(_chain(fsr, vdi)) == 1
    assert fsr.read_all(vdi)[:2 * MiB] == pattern("small", 2 * MiB)


CRASH_CHILD = r"""
import os, sys
from smapi.core.driver import load_driver
from tests.sr.helpers import pattern
sr, vdi, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
driver = load_driver("smapi.drivers.file:FileDriver")
h = driver.open_vdi(sr, vdi, writable=True)
sc = h.upload_scratch()
if sys.argv[4] == "whole":
    sc.write(0, pattern("crash", size))
else:
    sc.write(5, pattern("crash", 3 << 20))
sc.commit()
os._exit(0)
"""

RELINK_STEPS = ["accepted", "decided", "renamed", "hidden", "swapped", "recorded"]
REPLACE_STEPS = ["decided", "reparented", "swapped"]


@pytest.mark.parametrize("mode,step", [("relink", s) for s in RELINK_STEPS] + [("replace", s) for s in REPLACE_STEPS]
                         + [("detach", s) for s in REPLACE_STEPS])
def test_a_crash_at_each_step_of_an_in_place_landing_is_finished_by_the_next_scan(fsr: FileSR, monkeypatch,
                                                                                   mode: str, step: str) -> None:
    from smapi.sr import scratch
    from smapi.sr.faults import ENV, FAULT_EXIT_CODE

    monkeypatch.setenv(scratch.RELINK_ENV, "1")
    vdi = fsr.create(SIZE)
    expected = bytearray(pattern("base", SIZE))
    fsr.write(vdi, 0, bytes(expected))
    if mode == "replace":  # a differencing leaf first, for the whole-disk upload to cover
        with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
            sc = h.upload_scratch()
            sc.write(MiB, pattern("first", MiB))
            sc.commit()
        expected[MiB:2 * MiB] = pattern("first", MiB)
    child = subprocess.run([sys.executable, "-c", CRASH_CHILD, fsr.sr, vdi, str(SIZE),
                            "part" if mode == "relink" else "whole"], cwd=ROOT, capture_output=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": ROOT, ENV: f"upload.{step}"})
    assert child.returncode == FAULT_EXIT_CODE, child.stderr.decode()[-2000:]

    assert len(_scratches(fsr)) == (0 if step in ("swapped", "recorded") else 1)
    fsr.v("SR.scan")  # (its collector may then merge the chain: the shape after it is not asserted)
    if mode != "relink":
        expected[:] = pattern("crash", SIZE)
    else:
        expected[5:5 + (3 << 20)] = pattern("crash", 3 << 20)
    assert _scratches(fsr) == []
    assert sha(fsr.read_all(vdi)) == sha(bytes(expected))
    fsr.assert_consistent()


LVM_CRASH_CHILD = r"""
import os, sys
from smapi.core.driver import load_driver
from tests.sr.helpers import pattern
spec, sr, vdi, size, kind = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
h = load_driver(spec).open_vdi(sr, vdi, writable=True)
sc = h.upload_scratch()
if kind == "whole":
    sc.write(0, pattern("crash", size))
else:
    sc.write(5, pattern("crash", 3 << 20))
sc.commit()
os._exit(0)
"""


@pytest.mark.parametrize("mode,step", [("relink", "renamed"), ("relink", "swapped"), ("replace", "reparented"),
                                       ("detach", "reparented")])
@pytest.mark.parametrize("name", ["lvm", "lvm-thin"])
def test_a_crash_while_landing_in_place_on_lvm_is_finished_by_the_next_scan(tmp_path, monkeypatch, name: str,
                                                                            mode: str, step: str) -> None:
    """On LVM a landing is lvrenames (a rename over an existing LV is lvremove + lvrename): killed between the
    steps, the next scan (another process, fresh LVM views) finishes it and leaves no upload LV."""
    from smapi.core.driver import load_driver
    from smapi.sr import scratch
    from smapi.sr.faults import ENV, FAULT_EXIT_CODE
    from tests.sr.drivers import FACTORIES

    if name not in FACTORIES:
        pytest.skip(f"{name} SRs are not available here (lvm2, loop devices)")
    sut = FACTORIES[name](tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(scratch.RELINK_ENV, "1")
    sr = "5c7a7c4e-0000-4000-8000-00000000005d"
    try:
        def call(verb: str, **args):
            driver = load_driver(sut.driver_spec)  # a fresh driver per verb, as a per-verb process has
            return driver.dispatcher("storage").call(
                verb, {"dbg": "tests/sr", **args})

        call("SR.create", sr=sr, device_config=sut.device_config, physical_size=0)
        call("SR.attach", sr=sr, device_config=sut.device_config)
        vdi = call("VDI.create", sr=sr, vdi_info={"virtual_size": SIZE})["vdi"]
        expected = bytearray(pattern("base", SIZE))
        with load_driver(sut.driver_spec).open_vdi(sr, vdi, writable=True) as h:
            h.write(0, bytes(expected))
            if mode == "replace":  # a differencing leaf for the whole-disk upload to cover
                sc = h.upload_scratch()
                sc.write(MiB, pattern("first", MiB))
                sc.commit()
                expected[MiB:2 * MiB] = pattern("first", MiB)
        child = subprocess.run([sys.executable, "-c", LVM_CRASH_CHILD, sut.driver_spec, sr, vdi, str(SIZE),
                                "part" if mode == "relink" else "whole"], cwd=ROOT, capture_output=True,
                               timeout=120, env={**os.environ, "PYTHONPATH": ROOT, ENV: f"upload.{step}"})
        assert child.returncode == FAULT_EXIT_CODE, child.stderr.decode()[-2000:]
        call("SR.scan", sr=sr)
        if mode == "relink":
            expected[5:5 + (3 << 20)] = pattern("crash", 3 << 20)
        else:
            expected[:] = pattern("crash", SIZE)
        driver = load_driver(sut.driver_spec)
        with driver.open_vdi(sr, vdi) as h:
            assert sha(h.read(0, SIZE)) == sha(bytes(expected))
        engine = driver.engine_for(sr)
        assert engine.journal.pending() == []
        assert sorted(engine.substrate.list_volumes()) == sorted(r.volume for r in engine.load().vdis.values())
        call("SR.detach", sr=sr)
    finally:
        sut.cleanup()
