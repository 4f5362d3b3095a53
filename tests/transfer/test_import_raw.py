"""/import_raw_vdi: vhd-tool's chunked protocol (query or cookie, with or without Content-Length) and importing
into a new VDI (`sr_uuid=` instead of `vdi=`, raw or a VHD sized by its footer), with curl and a raw socket;
refusals change nothing."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from typing import List, Tuple

from tests.transfer.conftest import MiB, curl, patterned, sha, status_of
from tests.transfer.test_atomic import RawClient, _no_scratch_left

SIZE = 8 * MiB
AUTH = ("--digest", "-u", "root:s3cret")


def records(pieces: List[Tuple[int, bytes]], end: bool = True) -> bytes:
    out = b"".join(struct.pack("<QI", off, len(data)) + data for off, data in pieces)
    return out + (struct.pack("<QI", 0, 0) if end else b"")


PIECES = [(5 * MiB + 3, patterned(1, MiB + 100)), (0, patterned(2, 4096)), (7 * MiB, patterned(3, MiB)),
          (2 * MiB - 1, b"")]


def _expected(base: bytes, pieces) -> bytes:
    out = bytearray(base)
    for off, data in pieces:
        out[off:off + len(data)] = data
    return bytes(out)


def _vdi(fsr) -> Tuple[str, bytes]:
    vdi = fsr.create(SIZE)
    base = patterned(9, SIZE)
    fsr.write(vdi, 0, base)
    return vdi, base


def _file(work: str, name: str, data: bytes) -> str:
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _raw_put(port: int, path: str, body: bytes, headers: List[str]) -> bytes:
    """A PUT without Content-Length (as vhd-tool sends the chunked protocol); the whole response."""
    client = RawClient("127.0.0.1", port, "root", "s3cret")
    head = [f"PUT {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: {client._authorization('PUT', path)}",
            *headers]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        out = b""
        while True:  # the server answers, then closes: the body had no length
            data = s.recv(65536)
            if not data:
                return out
            out += data


def test_chunked_with_content_length_out_of_order_and_sparse(fsr, host, work):
    vdi, base = _vdi(fsr)
    path = _file(work, "stream", records(PIECES))
    r = curl(*AUTH, "-T", path, f"{host}/import_raw_vdi?vdi={vdi}&chunked")
    assert status_of(r) == 200, r.stdout
    assert sha(fsr.read_all(vdi)) == sha(_expected(base, PIECES))


def test_chunked_by_cookie_without_content_length(fsr, host):
    vdi, base = _vdi(fsr)
    port = int(host.rsplit(":", 1)[1])
    reply = _raw_put(port, f"/import_raw_vdi?vdi={vdi}&format=raw", records(PIECES), ["Cookie: chunked=true"])
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert sha(fsr.read_all(vdi)) == sha(_expected(base, PIECES))
    _no_scratch_left(fsr)


def test_bad_chunked_streams_change_nothing(fsr, host, work):
    vdi, base = _vdi(fsr)
    url = f"{host}/import_raw_vdi?vdi={vdi}&chunked"
    good = (0, patterned(4, MiB))
    cases = {
        416: records([good, (SIZE - 10, b"x" * 11)]),  # the second record passes the end of the disk
        400: records([good]) + b"trailing",  # bytes after the end marker
    }
    for status, body in cases.items():
        r = curl(*AUTH, "-T", _file(work, "bad", body), url)
        assert status_of(r) == status, r.stdout
    no_end = records([good], end=False)  # the declared body ends without the end marker
    assert status_of(curl(*AUTH, "-T", _file(work, "noend", no_end), url)) == 400
    assert status_of(curl(*AUTH, "-T", _file(work, "vhd", records([good])), url + "&format=vhd")) == 404
    # A client that goes away in the middle of a record (no Content-Length, like vhd-tool).
    client = RawClient("127.0.0.1", int(host.rsplit(":", 1)[1]), "root", "s3cret")
    stream = records([good, (3 * MiB, patterned(5, 2 * MiB))])
    client.send_part("PUT", f"/import_raw_vdi?vdi={vdi}&chunked", stream, len(stream) - MiB)
    _no_scratch_left(fsr)
    assert sha(fsr.read_all(vdi)) == sha(base)


def test_import_into_a_new_vdi(fsr, host, work):
    data = patterned(6, 3 * MiB + 512)
    r = curl(*AUTH, "-T", _file(work, "disk.raw", data), f"{host}/import_raw_vdi?sr_uuid={fsr.sr}&format=raw")
    assert status_of(r) == 200, r.stdout
    new = r.stdout.decode().strip()
    info = fsr.stat(new)
    assert info["name_label"] == "Imported VDI" and info["virtual_size"] == len(data)
    assert sha(fsr.read_all(new)) == sha(data)

    before = set(fsr.scan())
    for query, status in ((f"sr_uuid={fsr.sr}&format=vhd", 400), ("format=raw", 400),
                          ("sr_uuid=00000000-0000-0000-0000-000000000000", 404), (f"sr_uuid={fsr.sr}&chunked", 400)):
        r = curl(*AUTH, "-T", _file(work, "d", data), f"{host}/import_raw_vdi?{query}")
        assert status_of(r) == status, (query, r.stdout)
    # Cut off mid-body: the VDI made for it goes again.
    client = RawClient("127.0.0.1", int(host.rsplit(":", 1)[1]), "root", "s3cret")
    client.send_part("PUT", f"/import_raw_vdi?sr_uuid={fsr.sr}", data, len(data) // 2)
    _no_scratch_left(fsr)
    import time

    deadline = time.monotonic() + 10
    while set(fsr.scan()) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(fsr.scan()) == before
    fsr.assert_consistent()


def test_import_a_vhd_into_a_new_vdi(fsr, host, work):
    # qemu-img, an independent writer, makes the dynamic VHD; the new VDI takes its virtual size from the footer.
    size = 6 * MiB
    data = bytearray(size)
    data[MiB:MiB + 70000] = patterned(7, 70000)
    data[5 * MiB - 512:5 * MiB + 512] = patterned(8, 1024)
    raw = _file(work, "src.raw", bytes(data))
    vhd = os.path.join(work, "src.vhd")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
                    raw, vhd], check=True, capture_output=True)
    before = set(fsr.scan())
    r = curl(*AUTH, "-T", vhd, f"{host}/import_raw_vdi?sr_uuid={fsr.sr}&format=vhd")
    assert status_of(r) == 200, r.stdout
    new = r.stdout.decode().strip()
    info = fsr.stat(new)
    assert info["name_label"] == "Imported VDI" and info["virtual_size"] == size
    assert sha(fsr.read_all(new)) == sha(bytes(data))

    # Refused without leaving a VDI behind: a tar stream (no size up front), a truncated VHD, a fixed VHD.
    fixed = os.path.join(work, "fixed.vhd")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on",
                    raw, fixed], check=True, capture_output=True)
    with open(vhd, "rb") as f:
        truncated = _file(work, "short.vhd", f.read()[:-(MiB + 512)])
    for path, fmt, status in ((vhd, "tar", 400), (truncated, "vhd", 400), (fixed, "vhd", 400)):
        r = curl(*AUTH, "-T", path, f"{host}/import_raw_vdi?sr_uuid={fsr.sr}&format={fmt}")
        assert status_of(r) == status, (path, fmt, r.stdout)
    _no_scratch_left(fsr)
    assert set(fsr.scan()) == before | {new}
    fsr.assert_consistent()
