"""A BITS upload client on http.client (one keep-alive connection, like the Transfer VM's bits.py), with Digest
auth for the packets that need it."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
from typing import Dict, Optional, Tuple

PROTOCOL = "{7df0354d-249b-430f-820d-3d2a9bef4931}"


class BitsClient:
    def __init__(self, host: str, port: int, path: str, user: str, password: str,
                 context: Optional[ssl.SSLContext] = None) -> None:
        self.path = path
        self.user, self.password = user, password
        if context is not None:
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=context,
                                                                                 timeout=60)
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self._challenge: Optional[Dict[str, str]] = None
        self._nc = 0
        self.session: Optional[str] = None

    def close(self) -> None:
        self.conn.close()

    def _auth(self, method: str) -> str:
        c = self._challenge or {}
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = os.urandom(8).hex()

        def h(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()

        ha1 = h(f"{self.user}:{c['realm']}:{self.password}")
        ha2 = h(f"{method}:{self.path}")
        resp = h(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{self.path}", '
                f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{resp}"')

    def request(self, packet: Optional[str], body: bytes = b"", headers: Optional[Dict[str, str]] = None,
                auth: bool = True, method: str = "BITS_POST") -> Tuple[int, Dict[str, str], bytes]:
        hdrs = dict(headers or {})
        if packet is not None:
            hdrs["BITS-Packet-Type"] = packet
        hdrs["Content-Length"] = str(len(body))
        for _attempt in range(2):
            if auth and self._challenge is not None:
                hdrs["Authorization"] = self._auth(method)
            self.conn.request(method, self.path, body=body, headers=hdrs)
            r = self.conn.getresponse()
            data = r.read()
            out = {k.lower(): v for k, v in r.getheaders()}
            if r.status == 401 and auth:
                for value in r.headers.get_all("WWW-Authenticate") or []:
                    if value.startswith("Digest") and "MD5" in value:
                        self._challenge = dict(re.findall(r'(\w+)="?([^",]+)"?', value))
                if r.will_close:
                    self.conn.close()
                continue
            return r.status, out, data
        return r.status, out, data

    def create_session(self) -> str:
        status, h, _ = self.request("Create-Session", headers={"BITS-Supported-Protocols": PROTOCOL})
        assert status == 200, (status, h)
        assert h["bits-packet-type"] == "Ack" and h["bits-protocol"] == PROTOCOL
        self.session = h["bits-session-id"]
        return self.session

    def fragment(self, data: bytes, start: int, total: int, session: Optional[str] = None,
                 auth: bool = False) -> Tuple[int, Dict[str, str]]:
        headers = {"BITS-Session-Id": session or self.session or "",
                   "Content-Range": f"bytes {start}-{start + len(data) - 1}/{total}"}
        if start == 0:
            headers["Content-Name"] = "disk"
        status, h, _ = self.request("Fragment", data, headers, auth=auth)
        return status, h

    def close_session(self) -> int:
        status, _h, _ = self.request("Close-Session", headers={"BITS-Session-Id": self.session or ""}, auth=False)
        return status

    def upload(self, blob: bytes, fragment: int = 2 << 20) -> None:
        self.request("Ping")
        self.create_session()
        for start in range(0, len(blob), fragment):
            status, h = self.fragment(blob[start:start + fragment], start, len(blob))
            assert status == 200, (status, h)
            assert int(h["bits-received-content-range"]) == min(len(blob), start + fragment)
        assert self.close_session() == 200
