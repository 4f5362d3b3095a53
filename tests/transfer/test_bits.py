"""BITS mode with a BITS client written on http.client: whole uploads, resumable fragments (gap -> 416 with the
next expected byte, overlaps trimmed), malformed packets, auth, TLS, and the .vhd upload."""

from __future__ import annotations

import ssl

from tests.transfer.bitsclient import PROTOCOL, BitsClient
from tests.transfer.conftest import MiB, curl, patterned, sha

SIZE = 8 * MiB


def _client(ex, suffix: str = "", context=None) -> BitsClient:
    r = ex.record
    return BitsClient(r["ip"], int(r["port"]), r["url_path"] + suffix, r["username"], r["password"], context)


def test_bits_upload_round_trip_and_download(fsr, service):
    vdi = fsr.create(SIZE)
    ex = service.expose(vdi, "bits")
    assert ex.record["transfer_mode"] == "bits"
    blob = patterned(10, SIZE)
    c = _client(ex)
    try:
        c.upload(blob, fragment=3 * MiB)  # fragments need not align with anything
    finally:
        c.close()
    # BITS downloads are plain ranged GETs.
    assert sha(curl("--digest", "-u", ex.user, ex.url, check=True).stdout) == sha(blob)
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(blob)


def test_fragments_resume_gap_and_overlap(fsr, service):
    vdi = fsr.create(SIZE)
    ex = service.expose(vdi, "bits")
    blob = patterned(11, 5 * MiB)
    c = _client(ex)
    try:
        c.request("Ping")
        c.create_session()
        assert c.fragment(blob[:MiB], 0, len(blob))[0] == 200
        # A gap: refused, and the server says where to resume.
        status, h = c.fragment(blob[2 * MiB:3 * MiB], 2 * MiB, len(blob))
        assert status == 416 and h["bits-received-content-range"] == str(MiB)
        assert h["bits-error-code"] == "0x80070057"
        # An overlap: only the new part is written (the overlapping bytes are deliberately wrong).
        bad_overlap = b"\xee" * 1000 + blob[MiB:2 * MiB]
        status, h = c.fragment(bad_overlap, MiB - 1000, len(blob))
        assert status == 200 and h["bits-received-content-range"] == str(2 * MiB)
        # A fragment entirely received already: acknowledged, nothing written.
        status, h = c.fragment(b"\xdd" * 100, 0, len(blob))
        assert status == 200 and h["bits-received-content-range"] == str(2 * MiB)
        # A different total within the session is refused.
        assert c.fragment(blob[2 * MiB:3 * MiB], 2 * MiB, len(blob) + 1)[0] == 400
        # A client that lost its connection resumes on a fresh one with the same session.
        c.close()
        for start in range(2 * MiB, len(blob), MiB):
            assert c.fragment(blob[start:start + MiB], start, len(blob))[0] == 200
        assert c.close_session() == 200
    finally:
        c.close()
    service.unexpose(ex.handle)
    assert fsr.read_all(vdi)[:len(blob)] == blob


def test_malformed_bits_packets(fsr, service):
    vdi = fsr.create(SIZE)
    content = patterned(12, SIZE)
    fsr.write(vdi, 0, content)
    ex = service.expose(vdi, "bits")
    c = _client(ex)
    try:
        assert c.request("Ping")[0] == 200
        # Packet types match case-insensitively (as the Transfer VM's tests send them).
        status, h, _ = c.request("CreatE-SEssION", headers={"BITS-Supported-Protocols": PROTOCOL.upper()})
        assert status == 200 and h["bits-session-id"].startswith("{")
        sid = h["bits-session-id"]
        cases = [
            ({}, b"", None),  # no packet type
            ({}, b"", "Bogus"),
            ({"BITS-Supported-Protocols": "{00000000-0000-0000-0000-000000000000}"}, b"", "Create-Session"),
            ({"BITS-Supported-Protocols": PROTOCOL}, b"body", "Create-Session"),
            ({}, b"x", "Ping"),
            ({"BITS-Session-Id": sid}, b"abc", "Fragment"),  # no Content-Range
            ({"BITS-Session-Id": sid, "Content-Range": "bytes 0-9/5"}, b"0123456789", "Fragment"),
            ({"BITS-Session-Id": sid, "Content-Range": "bytes 0-9/100"}, b"short", "Fragment"),
            ({"BITS-Session-Id": sid, "Content-Range": "bytes x-y/z"}, b"abc", "Fragment"),
            ({"BITS-Session-Id": "{nope}", "Content-Range": "bytes 0-2/3"}, b"abc", "Fragment"),
            ({"BITS-Session-Id": "{nope}"}, b"", "Close-Session"),
        ]
        for headers, body, packet in cases:
            status, h, _ = c.request(packet, body, headers)
            assert status == 400, (packet, headers, status)
            assert h["bits-packet-type"] == "Ack" and h["bits-error-code"].startswith("0x8")
            assert h["bits-error-context"] in ("0x5", "0x7")
        # Larger than the disk.
        status, h, _ = c.request("Fragment", b"abc", {"BITS-Session-Id": sid,
                                                       "Content-Range": f"bytes 0-2/{SIZE + 1}"})
        assert status == 413 and h["bits-error-code"] == "0x80200020"
        # Cancel releases the session; its id is then unknown.
        assert c.request("Cancel-Session", headers={"BITS-Session-Id": sid})[0] == 200
        status, h, _ = c.request("Fragment", b"abc", {"BITS-Session-Id": sid, "Content-Range": "bytes 0-2/3"})
        assert status == 400 and h["bits-error-code"] == "0x8020001F"
        # POST with the method override is BITS_POST (for proxies that drop unknown methods).
        status, h, _ = c.request("Ping", headers={"X-Http-Method-Override": "BITS_POST"}, method="POST")
        assert status == 200 and h["bits-packet-type"] == "Ack"
        # PUT is for http mode.
        assert c.request(None, b"abc", {"Content-Range": "bytes 0-2/3"}, method="PUT")[0] == 405
    finally:
        c.close()
    # Wrong credentials: no session.
    bad = _client(ex)
    bad.password = "0" * 16
    try:
        assert bad.request("Create-Session", headers={"BITS-Supported-Protocols": PROTOCOL})[0] == 401
        assert bad.request("Ping", auth=False)[0] == 401
    finally:
        bad.close()
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(content)


def test_bits_over_tls(fsr, service, work):
    vdi = fsr.create(SIZE)
    ex = service.expose(vdi, "bits", use_ssl="true")
    ctx = ssl.create_default_context(cadata=ex.record["ssl_cert"])
    blob = patterned(13, SIZE)
    c = _client(ex, context=ctx)
    try:
        c.upload(blob)
    finally:
        c.close()
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(blob)
