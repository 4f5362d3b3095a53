"""Uploads are atomic: a client that really goes away mid-body (a raw socket sending part of the body, then
closing) leaves the VDI exactly as it was, for every whole-body upload (raw PUT, Content-Range PUT, `.vhd` PUT,
/import_raw_vdi); BITS fragments land only at Close-Session and are dropped by Cancel-Session, an idle timeout,
or the exposure stopping. No upload scratch is left behind, including after a killed exposure server (the next
SR.scan removes it)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import os
import re
import signal
import socket
import time
from typing import Dict, List, Optional

import pytest

from smapi.transfer import auth as A
from smapi.transfer.state import Exposure
from tests.transfer.bitsclient import BitsClient
from tests.transfer.conftest import MiB, curl, patterned, sha, status_of

SIZE = 8 * MiB


# ------------------------------------------------------------------------------------------------ raw client
def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class RawClient:
    """HTTP over a plain socket, with Digest auth computed by hand, so a test can stop in the middle of a body."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.nc = 0
        self.nonce: Optional[str] = None

    def _authorization(self, method: str, path: str) -> str:
        if self.nonce is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            conn.request("HEAD", path)
            r = conn.getresponse()
            r.read()
            conn.close()
            md5 = [v for v in r.headers.get_all("WWW-Authenticate") or [] if v.startswith("Digest") and "MD5" in v]
            self.nonce = dict(re.findall(r'(\w+)="?([^",]+)"?', md5[0]))["nonce"]
        self.nc += 1
        nc = f"{self.nc:08x}"
        ha1 = _md5(f"{self.user}:{A.REALM}:{self.password}")
        resp = _md5(f"{ha1}:{self.nonce}:{nc}:c0ffee:auth:{_md5(f'{method}:{path}')}")
        return (f'Digest username="{self.user}", realm="{A.REALM}", nonce="{self.nonce}", uri="{path}", '
                f'algorithm=MD5, qop=auth, nc={nc}, cnonce="c0ffee", response="{resp}"')

    def send_part(self, method: str, path: str, body: bytes, sent: int, headers: Optional[Dict[str, str]] = None,
                  before_close=None) -> None:
        """Announce all of `body`, send its first `sent` bytes, then close the connection."""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Authorization: {self._authorization(method, path)}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        with socket.create_connection((self.host, self.port), timeout=30) as s:
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            view = memoryview(body)[:sent]
            for pos in range(0, len(view), 256 << 10):
                s.sendall(view[pos:pos + (256 << 10)])
            if before_close is not None:
                before_close()
            with contextlib.suppress(OSError):  # the server may be gone already
                s.shutdown(socket.SHUT_RDWR)


# ------------------------------------------------------------------------------------------------ helpers
def _scratches(fsr) -> List[str]:
    return glob.glob(os.path.join(fsr.path, "upload-*"))


def _wait(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _no_scratch_left(fsr) -> None:
    # The volume goes first, then its journal entry.
    _wait(lambda: not _scratches(fsr) and not os.listdir(os.path.join(fsr.path, ".journal")),
          "the upload scratch and its journal entry to be removed")


def _download(ex) -> bytes:
    return curl("--digest", "-u", ex.user, ex.url, check=True).stdout


def _client(ex) -> RawClient:
    r = ex.record
    return RawClient(r["ip"], int(r["port"]), r["username"], r["password"])


@pytest.fixture
def disk(fsr):
    vdi = fsr.create(SIZE)
    content = patterned(11, SIZE)
    fsr.write(vdi, 0, content)
    return vdi, content


# ------------------------------------------------------------------------------------------------ HTTP PUT
@pytest.mark.parametrize("kind", ["whole", "range"])
def test_raw_put_cut_off_mid_body_leaves_the_vdi_unchanged(fsr, service, disk, kind):
    vdi, content = disk
    ex = service.expose(vdi)
    client = _client(ex)
    headers = {}
    body = patterned(12, SIZE)
    if kind == "range":
        body = body[:3 * MiB + 5]
        headers = {"Content-Range": f"bytes {MiB + 7}-{MiB + 7 + len(body) - 1}/{SIZE}"}

    def while_uploading() -> None:
        # The bytes received so far sit in a scratch on the SR, not in the VDI.
        _wait(lambda: bool(_scratches(fsr)), "the upload scratch")
        time.sleep(0.3)
        assert sha(_download(ex)) == sha(content)

    client.send_part("PUT", ex.record["url_path"], body, len(body) // 2, headers, before_close=while_uploading)
    _no_scratch_left(fsr)
    assert sha(_download(ex)) == sha(content)

    # The same upload sent completely lands, whole.
    path = os.path.join(fsr.path, "..", "body")
    with open(path, "wb") as f:
        f.write(body)
    extra = ["-H", f"Content-Range: {headers['Content-Range']}"] if headers else []
    assert status_of(curl("--digest", "-u", ex.user, "-T", path, *extra, ex.url)) == 200
    expected = bytearray(content)
    start = MiB + 7 if kind == "range" else 0
    expected[start:start + len(body)] = body
    assert sha(_download(ex)) == sha(bytes(expected))
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(bytes(expected))
    _no_scratch_left(fsr)
    fsr.assert_consistent()


def test_vhd_put_cut_off_mid_body_leaves_the_vdi_unchanged(fsr, service, disk, work):
    vdi, content = disk
    other = fsr.create(SIZE)
    fsr.write(other, MiB, patterned(13, 4 * MiB))
    src = service.expose(other, read_only="true")
    image = curl("--digest", "-u", src.user, src.url + ".vhd", check=True).stdout
    service.unexpose(src.handle)
    ex = service.expose(vdi)
    _client(ex).send_part("PUT", ex.record["url_path"] + ".vhd", image, len(image) * 3 // 4)
    _no_scratch_left(fsr)
    assert sha(_download(ex)) == sha(content)
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(content)
    fsr.assert_consistent()


def test_import_raw_vdi_cut_off_mid_body_leaves_the_vdi_unchanged(fsr, disk, host):
    vdi, content = disk
    client = RawClient("127.0.0.1", int(host.rsplit(":", 1)[1]), "root", "s3cret")
    for fmt in ("raw", "tar"):
        body = patterned(14, SIZE) if fmt == "raw" else _tar_of(patterned(15, SIZE))
        client.send_part("PUT", f"/import_raw_vdi?vdi={vdi}&format={fmt}", body, len(body) // 2)
        _no_scratch_left(fsr)
        _wait(lambda: _unlocked(fsr, vdi), "the import to let go of the VDI")
        assert sha(fsr.read_all(vdi)) == sha(content), fmt
    fsr.assert_consistent()


def _tar_of(data: bytes) -> bytes:
    import io

    from smapi.transfer import formats
    from smapi.transfer.disk import Disk

    class Mem:
        size = len(data)

        def read(self, off: int, n: int) -> bytes:
            return data[off:off + n]

        def close(self) -> None:
            pass

    out = io.BytesIO()
    formats.FORMATS["tar"].export(Disk(Mem(), False), "vdi").write_to(out)
    return out.getvalue()


def _unlocked(fsr, vdi: str) -> bool:
    from smapi.sr.locks import FileLock

    lock = FileLock(os.path.join(fsr.path, ".locks", f"vdi-{vdi}"))
    if not lock.acquire(timeout=0):
        return False
    lock.release()
    return True


# ------------------------------------------------------------------------------------------------ BITS
def _bits(ex) -> BitsClient:
    r = ex.record
    return BitsClient(r["ip"], int(r["port"]), r["url_path"], r["username"], r["password"])


def test_bits_fragments_land_at_close_session_only(fsr, service, disk):
    vdi, content = disk
    ex = service.expose(vdi, mode="bits")
    blob = patterned(16, 6 * MiB + 1000)
    client = _bits(ex)
    try:
        client.request("Ping")
        client.create_session()
        for start in range(0, 4 * MiB, 2 * MiB):
            status, _h = client.fragment(blob[start:start + 2 * MiB], start, len(blob))
            assert status == 200
        assert sha(_download(ex)) == sha(content), "fragments reached the VDI before Close-Session"
        assert len(_scratches(fsr)) == 1
        # The connection drops; the client resumes on a new one where the server says it is.
        sid = client.session
        client.close()
        client = _bits(ex)
        client.session = sid
        status, h = client.fragment(blob[5 * MiB:], 5 * MiB, len(blob))
        assert status == 416 and h["bits-received-content-range"] == str(4 * MiB)
        status, _h = client.fragment(blob[4 * MiB:], 4 * MiB, len(blob))
        assert status == 200
        assert sha(_download(ex)) == sha(content)
        assert client.close_session() == 200
    finally:
        client.close()
    expected = bytearray(content)
    expected[:len(blob)] = blob
    assert sha(_download(ex)) == sha(bytes(expected))
    _no_scratch_left(fsr)


def test_bits_cancel_timeout_and_unexpose_drop_the_fragments(fsr, service, disk, monkeypatch):
    vdi, content = disk
    monkeypatch.setenv("SMAPI_TRANSFER_BITS_IDLE", "1")  # the exposure server inherits it
    ex = service.expose(vdi, mode="bits")
    blob = patterned(17, 4 * MiB)

    def half_session() -> BitsClient:
        c = _bits(ex)
        c.request("Ping")
        c.create_session()
        assert _scratches(fsr) == [], "a session without fragments costs no SR space"
        assert c.fragment(blob[:2 * MiB], 0, len(blob))[0] == 200
        return c

    c = half_session()
    assert len(_scratches(fsr)) == 1
    status, _h, _b = c.request("Cancel-Session", headers={"BITS-Session-Id": c.session or ""}, auth=False)
    assert status == 200
    c.close()
    _no_scratch_left(fsr)

    c = half_session()  # abandoned: the idle limit drops it at the next BITS packet after a second
    c.close()
    time.sleep(1.5)
    other = _bits(ex)
    assert other.request("Ping")[0] == 200
    other.close()
    _no_scratch_left(fsr)
    status, h = half_session_resume(ex, c.session, blob)
    assert status == 400 and h.get("bits-error-code") == "0x8020001F"  # the session is gone

    c = half_session()  # still open when the exposure stops
    c.close()
    service.unexpose(ex.handle)
    _no_scratch_left(fsr)
    assert sha(fsr.read_all(vdi)) == sha(content)
    fsr.assert_consistent()


def half_session_resume(ex, session: Optional[str], blob: bytes):
    c = _bits(ex)
    try:
        c.session = session
        return c.fragment(blob[2 * MiB:], 2 * MiB, len(blob), auth=True)  # an unknown session id must authenticate
    finally:
        c.close()


def test_close_session_before_all_fragments_drops_the_upload(fsr, service, disk):
    vdi, content = disk
    ex = service.expose(vdi, mode="bits")
    c = _bits(ex)
    try:
        c.request("Ping")
        c.create_session()
        assert c.fragment(patterned(18, MiB), 0, 3 * MiB)[0] == 200
        assert c.close_session() == 400
    finally:
        c.close()
    _no_scratch_left(fsr)
    assert sha(_download(ex)) == sha(content)


# ------------------------------------------------------------------------------------------------ crashes
def test_a_killed_exposure_server_leaves_a_scratch_that_the_next_scan_removes(fsr, service, disk):
    vdi, content = disk
    ex = service.expose(vdi)
    client = _client(ex)

    def kill_server() -> None:
        _wait(lambda: bool(_scratches(fsr)), "the upload scratch")
        e = Exposure.load(ex.handle)
        assert e is not None and e.pid
        os.kill(e.pid, signal.SIGKILL)
        # A killed multi-threaded process shows as a zombie before its last thread has closed its files: wait
        # for what matters, the VDI lock (while it is held, recovery rightly takes the upload for a live one).
        _wait(lambda: _unlocked(fsr, vdi), "the dead exposure server's VDI lock")

    client.send_part("PUT", ex.record["url_path"], patterned(19, SIZE), SIZE // 2, before_close=kill_server)
    assert len(_scratches(fsr)) == 1 and os.listdir(os.path.join(fsr.path, ".journal"))
    service.impl.cleanup()  # removes the dead exposure
    service.handles.remove(ex.handle)
    fsr.v("SR.scan")
    _no_scratch_left(fsr)
    assert sha(fsr.read_all(vdi)) == sha(content)
    fsr.assert_consistent()


# ------------------------------------------------------------------------------------------------ in place
def test_large_puts_land_in_place_and_the_exposure_serves_the_new_chain(fsr, service, disk, work, monkeypatch):
    """Above the relink threshold a PUT's scratch becomes the VDI's leaf (relink, then replace); the exposure's
    handle follows the new chain at once: raw and .vhd downloads show the upload, before and after unexpose."""
    from smapi.sr import scratch

    monkeypatch.setenv(scratch.RELINK_ENV, "1")  # the exposure server inherits it
    vdi, content = disk
    ex = service.expose(vdi)
    expected = bytearray(content)
    for seed, start, n in ((21, MiB + 3, 3 * MiB), (22, 0, SIZE), (23, 0, SIZE)):
        body = patterned(seed, n)
        path = os.path.join(work, f"body{seed}")
        with open(path, "wb") as f:
            f.write(body)
        extra = [] if n == SIZE else ["-H", f"Content-Range: bytes {start}-{start + n - 1}/{SIZE}"]
        assert status_of(curl("--digest", "-u", ex.user, "-T", path, *extra, ex.url)) == 200
        expected[start:start + n] = body
        assert sha(_download(ex)) == sha(bytes(expected))
        got = curl("--digest", "-u", ex.user, "-r", f"{MiB}-{2 * MiB - 1}", ex.url, check=True).stdout
        assert got == bytes(expected[MiB:2 * MiB])
        image = curl("--digest", "-u", ex.user, ex.url + ".vhd", check=True).stdout
        assert sha(_vhd_content(image)) == sha(bytes(expected)), "the .vhd view is stale"
    doc = fsr.document()
    assert doc.depth(vdi) == 2, "relinked once, then replaced: one upload base"
    service.unexpose(ex.handle)
    _no_scratch_left(fsr)
    assert sha(fsr.read_all(vdi)) == sha(bytes(expected))
    fsr.assert_consistent()


def _vhd_content(image: bytes) -> bytes:
    from smapi.vhd import VhdReceiver

    out = bytearray(SIZE)

    def put(off: int, data: bytes) -> None:
        out[off:off + len(data)] = data

    rx = VhdReceiver(SIZE, put, length=len(image))
    rx.feed(image)
    rx.finish()
    return bytes(out)
