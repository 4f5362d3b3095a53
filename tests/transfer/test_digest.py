"""Digest auth replay protection: a captured Authorization header is refused when sent again (raw http.client),
genuine clients (curl reusing one nonce over many requests) keep working, expired nonces get `stale=true`."""

from __future__ import annotations

import hashlib
import http.client
import re
import subprocess
import time
from typing import Dict, Optional

import pytest

from smapi.transfer import auth as A
from tests.transfer.conftest import MiB

SIZE = 4 * MiB


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def _challenge(host: str, port: int, path: str) -> Dict[str, str]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 401
    md5 = [v for v in r.headers.get_all("WWW-Authenticate") or [] if v.startswith("Digest") and "MD5" in v]
    return dict(re.findall(r'(\w+)="?([^",]+)"?', md5[0]))


def _header(user: str, password: str, path: str, nonce: str, nc: int, qop: Optional[str] = "auth") -> str:
    ha1 = _md5(f"{user}:{A.REALM}:{password}")
    ha2 = _md5(f"GET:{path}")
    if qop is None:
        resp = _md5(f"{ha1}:{nonce}:{ha2}")
        return f'Digest username="{user}", realm="{A.REALM}", nonce="{nonce}", uri="{path}", response="{resp}"'
    cnonce = "0a4f113b"
    resp = _md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{A.REALM}", nonce="{nonce}", uri="{path}", algorithm=MD5, '
            f'qop=auth, nc={nc:08x}, cnonce="{cnonce}", response="{resp}"')


def _get(host: str, port: int, path: str, authorization: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", path, headers={"Authorization": authorization, "Range": "bytes=0-9"})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r


def test_a_replayed_authorization_header_is_refused(fsr, service):
    vdi = fsr.create(SIZE)
    ex = service.expose(vdi)
    rec = ex.record
    host, port, path = rec["ip"], int(rec["port"]), rec["url_path"]
    user, password = rec["username"], rec["password"]
    nonce = _challenge(host, port, path)["nonce"]

    first = _header(user, password, path, nonce, 1)
    assert _get(host, port, path, first).status == 206
    replay = _get(host, port, path, first)  # the same bytes again, on a new connection
    assert replay.status == 401
    assert all("stale=true" not in v for v in replay.headers.get_all("WWW-Authenticate")), "a replay is not stale"
    # The genuine client goes on counting; counts may arrive out of order, each is accepted once.
    assert _get(host, port, path, _header(user, password, path, nonce, 3)).status == 206
    assert _get(host, port, path, _header(user, password, path, nonce, 2)).status == 206
    assert _get(host, port, path, _header(user, password, path, nonce, 2)).status == 401
    assert _get(host, port, path, _header(user, password, path, nonce, 0)).status == 401
    # RFC 2069 digests (no qop, no count) cannot be protected: refused.
    assert _get(host, port, path, _header(user, password, path, nonce, 4, qop=None)).status == 401
    # A fresh challenge's nonce starts its own counts.
    other = _challenge(host, port, path)["nonce"]
    assert _get(host, port, path, _header(user, password, path, other, 1)).status == 206


def test_curl_keeps_working_over_many_requests(fsr, service):
    vdi = fsr.create(SIZE)
    ex = service.expose(vdi)
    n = 40
    r = subprocess.run(["curl", "-sS", "-v", "--max-time", "60", "--digest", "-u", ex.user, "-r", "0-9",
                        "-w", "%{http_code}\n", *(["-o", "/dev/null", ex.url] * n)], capture_output=True, timeout=90)
    assert r.stdout.decode().split() == ["206"] * n, r.stderr[-2000:]
    sent = re.findall(rb"> Authorization: Digest .*", r.stderr)
    assert len(sent) == n and len(set(sent)) == n  # curl answers each URL's challenge afresh


def test_a_client_counting_on_one_nonce_keeps_working(fsr, service):
    """The BITS test client (http.client, one keep-alive connection) reuses its nonce with nc 1, 2, 3..."""
    from tests.transfer.bitsclient import BitsClient

    vdi = fsr.create(SIZE)
    ex = service.expose(vdi, mode="bits")
    rec = ex.record
    client = BitsClient(rec["ip"], int(rec["port"]), rec["url_path"], rec["username"], rec["password"])
    try:
        statuses = [client.request("Ping")[0] for _ in range(30)]
    finally:
        client.close()
    assert statuses == [200] * 30
    assert client._nc == 30  # one challenge, then every request counted on its nonce


def test_expired_nonce_is_stale(monkeypatch):
    auth = A.Authenticator(A.Credentials("u" * 16, "p" * 16), allow_basic=False)
    nonce = auth.new_nonce()
    header = _header("u" * 16, "p" * 16, "/x", nonce, 1)
    later = time.time() + A.NONCE_LIFETIME + 1
    monkeypatch.setattr(A.time, "time", lambda: later)
    assert auth.check(header, "GET", "/x") == "stale"
    assert all("stale=true" in c for c in auth.challenges(stale=True) if c.startswith("Digest"))
    # A wrong password with an old nonce is still just denied: stale is only said to someone who knew it.
    assert auth.check(_header("u" * 16, "wrong", "/x", nonce, 1), "GET", "/x") == "denied"


def test_nonce_counts_window_and_limit():
    counts = A.NonceCounts(window=4, limit=2)
    now = time.time()
    assert all(counts.use("a", nc, now) for nc in (5, 1, 2, 3, 4))
    assert not counts.use("a", 1, now)  # fell below the window: refused
    assert counts.use("a", 6, now) and not counts.use("a", 6, now)
    counts.use("b", 1, now + 1)
    counts.use("c", 1, now + 2)  # over the limit: "a", the oldest, is forgotten
    assert len(counts) == 2


@pytest.mark.parametrize("nc", ["1", "0000000g", "000000001"])
def test_malformed_nonce_counts_are_denied(nc):
    auth = A.Authenticator(A.Credentials("u" * 16, "p" * 16), allow_basic=False)
    nonce = auth.new_nonce()
    header = _header("u" * 16, "p" * 16, "/x", nonce, 1).replace("nc=00000001", f"nc={nc}")
    assert auth.check(header, "GET", "/x") == "denied"
