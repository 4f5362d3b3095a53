"""XVA disk encodings: round trips against a bytearray model, and every kind of damage gives a typed error."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smapi.transfer import xva
from smapi.transfer.xva import CHUNK, XvaFormatError, xxhash_hex


def export(disk: bytes, prefix: str = "Ref:1") -> bytes:
    out = io.BytesIO()
    xva.write_tar_chunks(lambda off, n: bytes(disk[off:off + n]), len(disk), out, prefix)
    return out.getvalue()


def import_(blob: bytes, size: int, prefix=None) -> bytearray:
    disk = bytearray(size)

    def write(off: int, data: bytes) -> None:
        disk[off:off + len(data)] = data

    xva.read_tar_chunks(io.BytesIO(blob), write, size, prefix)
    return disk


@st.composite
def sparse_disks(draw):
    chunks = draw(st.integers(min_value=1, max_value=6))
    tail = draw(st.integers(min_value=0, max_value=CHUNK - 1))
    disk = bytearray(chunks * CHUNK + tail)
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        off = draw(st.integers(min_value=0, max_value=len(disk) - 1))
        data = draw(st.binary(min_size=1, max_size=4096))
        disk[off:off + len(data)] = data[: len(disk) - off]
    return bytes(disk)


@settings(max_examples=25, deadline=None)
@given(sparse_disks())
def test_tar_round_trip(disk):
    assert bytes(import_(export(disk), len(disk))) == disk


def _members(blob: bytes):
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r|") as tar:
        return [m.name for m in tar]


def test_zero_chunks_are_left_out_but_first_and_last_kept():
    disk = bytearray(5 * CHUNK)
    disk[2 * CHUNK] = 1
    names = _members(export(bytes(disk)))
    assert names == ["Ref:1/00000000", "Ref:1/00000000.xxhash", "Ref:1/00000002", "Ref:1/00000002.xxhash",
                     "Ref:1/00000004", "Ref:1/00000004.xxhash"]


def build(members) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def chunk(seq: int, data: bytes, checksum: str = "xxhash"):
    digest = xxhash_hex(data).encode() if checksum == "xxhash" else hashlib.sha1(data).hexdigest().encode()
    return [(f"Ref:7/{seq:08d}", data), (f"Ref:7/{seq:08d}.{checksum}", digest)]


def test_keepalive_members_and_sha1_checksums_are_understood():
    a, b = b"a" * CHUNK, b"b" * 100
    blob = build([("ova.xml", b"<x/>"), *chunk(0, a), *chunk(1, b"", "checksum"), *chunk(3, b, "checksum")])
    disk = import_(blob, 3 * CHUNK, prefix="Ref:7")
    # seq 1 is a keep-alive (no offset), seq 2 is a left-out zero chunk, seq 3 lands after it
    assert disk[:CHUNK] == a and disk[CHUNK:2 * CHUNK] == bytes(CHUNK) and disk[2 * CHUNK:2 * CHUNK + 100] == b


@pytest.mark.parametrize("members,needle", [
    ([("Ref:7/00000000", b"x"), ("Ref:7/00000000.xxhash", b"0000000000000000")], "checksum mismatch"),
    ([("Ref:7/00000000", b"x")], "no checksum member"),
    ([("Ref:7/00000000.xxhash", b"00")], "no data member"),
    ([*[(n, d) for n, d in chunk(1, b"x")], *[(n, d) for n, d in chunk(1, b"y")]], "must increase"),
    ([("Ref:7/00000000", b"x" * (CHUNK + 1))], "at most"),
])
def test_damage_is_a_typed_error(members, needle):
    with pytest.raises(XvaFormatError) as e:
        import_(build(members), 4 * CHUNK)
    assert needle in e.value.message()


def test_truncated_and_non_tar_streams():
    blob = export(b"z" * (3 * CHUNK))
    with pytest.raises(XvaFormatError):
        import_(blob[: len(blob) // 2], 3 * CHUNK)
    with pytest.raises(XvaFormatError):
        import_(b"definitely not a tar file" * 40, CHUNK)


def test_data_past_the_disk_end_is_refused():
    with pytest.raises(XvaFormatError) as e:
        import_(export(b"q" * (2 * CHUNK)), CHUNK)
    assert "past the disk" in e.value.message()


def test_legacy_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(xva, "LEGACY_CHUNK", 3 * CHUNK)  # the real 1e9 bytes would make this test slow
    disk = bytearray(7 * CHUNK + 123)
    disk[5] = 9
    disk[4 * CHUNK + 7] = 3
    count = xva.write_legacy_chunks(lambda o, n: bytes(disk[o:o + n]), len(disk), str(tmp_path / "d"))
    assert count == 3 and sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "chunk-000000000.gz", "chunk-000000001.gz", "chunk-000000002.gz"]
    out = bytearray(len(disk))
    read = xva.read_legacy_chunks(str(tmp_path / "d"), lambda o, d: out.__setitem__(slice(o, o + len(d)), d))
    assert read == len(disk) and out == disk


def test_legacy_damage(tmp_path, monkeypatch):
    monkeypatch.setattr(xva, "LEGACY_CHUNK", CHUNK)
    d = tmp_path / "d"
    xva.write_legacy_chunks(lambda o, n: b"\1" * n, 3 * CHUNK, str(d))
    (d / "chunk-000000001.gz").unlink()
    with pytest.raises(XvaFormatError) as e:
        xva.read_legacy_chunks(str(d), lambda o, data: None)
    assert "missing chunk-000000001.gz" in e.value.message()
    (d / "chunk-000000001.gz").write_bytes(gzip.compress(b"\1" * 10))
    with pytest.raises(XvaFormatError) as e:
        xva.read_legacy_chunks(str(d), lambda o, data: None)
    assert "every chunk but the last" in e.value.message()
    (d / "chunk-000000001.gz").write_bytes(b"not gzip")
    with pytest.raises(XvaFormatError):
        xva.read_legacy_chunks(str(d), lambda o, data: None)
