"""Credentials and HTTP authentication of an exposure.

One random username and password per exposure (16 hex characters each, as the Transfer VM used, but drawn from
the `secrets` CSPRNG), used for HTTP auth and for iSCSI CHAP. HTTP accepts Digest (RFC 7616, MD5 or SHA-256,
qop=auth) always, and Basic only over TLS, where the clear-text password is protected. Nonces are stateless:
a timestamp signed with a per-exposure key, so a server restart or several worker threads need no shared table;
a nonce older than NONCE_LIFETIME is answered with `stale=true` and the client retries without asking the user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

REALM = "Transfer VM"
NONCE_LIFETIME = 3600.0
_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*,?')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(secrets.token_hex(8), secrets.token_hex(8))


def parse_params(text: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1).lower()] = value
        pos = m.end()
    return out


class Authenticator:
    def __init__(self, credentials: Credentials, allow_basic: bool) -> None:
        self.credentials = credentials
        self.allow_basic = allow_basic
        self._key = secrets.token_bytes(32)

    # -- nonces -------------------------------------------------------------------------------------------------
    def _sign(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = f"{time.time():.3f}"
        return base64.b64encode(f"{stamp}:{self._sign(stamp)}".encode()).decode()

    def _nonce_state(self, nonce: str) -> str:
        """"ok", "stale" or "bad"."""
        try:
            stamp, sig = base64.b64decode(nonce.encode(), validate=True).decode().split(":", 1)
            issued = float(stamp)
        except (ValueError, UnicodeDecodeError):
            return "bad"
        if not hmac.compare_digest(sig, self._sign(stamp)):
            return "bad"
        return "ok" if time.time() - issued < NONCE_LIFETIME else "stale"

    # -- challenges and checks ---------------------------------------------------------------------------------
    def challenges(self, stale: bool = False) -> List[str]:
        nonce = self.new_nonce()
        extra = ", stale=true" if stale else ""
        out = [f'Digest realm="{REALM}", qop="auth", algorithm={alg}, nonce="{nonce}"{extra}'
               for alg in ("SHA-256", "MD5")]
        if self.allow_basic:
            out.append(f'Basic realm="{REALM}"')
        return out

    def check(self, header: Optional[str], method: str, uri: str) -> str:
        """"ok", "stale" (retry with a fresh nonce) or "denied"."""
        if not header:
            return "denied"
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "basic":
            return "ok" if self.allow_basic and self._basic_ok(rest.strip()) else "denied"
        if scheme.lower() == "digest":
            return self._digest(parse_params(rest), method, uri)
        return "denied"

    def _basic_ok(self, token: str) -> bool:
        try:
            user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), self.credentials.username.encode())
        ok_pass = hmac.compare_digest(password.encode(), self.credentials.password.encode())
        return ok_user and ok_pass

    def _digest(self, p: Dict[str, str], method: str, uri: str) -> str:
        alg = p.get("algorithm", "MD5").upper()
        fn = _ALGORITHMS.get(alg)
        needed = ("username", "realm", "nonce", "uri", "response")
        if fn is None or any(k not in p for k in needed) or p["realm"] != REALM:
            return "denied"
        # The digest covers the URI the client sent; it must be the one this request is for.
        if p["uri"] != uri:
            return "denied"
        if not hmac.compare_digest(p["username"].encode(), self.credentials.username.encode()):
            return "denied"

        def h(text: str) -> str:
            return fn(text.encode()).hexdigest()

        ha1 = h(f"{self.credentials.username}:{REALM}:{self.credentials.password}")
        ha2 = h(f"{method}:{p['uri']}")
        qop = p.get("qop")
        if qop == "auth":
            if "nc" not in p or "cnonce" not in p:
                return "denied"
            expected = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        elif qop is None:
            expected = h(f"{ha1}:{p['nonce']}:{ha2}")
        else:
            return "denied"
        if not hmac.compare_digest(expected.encode(), p["response"].lower().encode()):
            return "denied"
        state = self._nonce_state(p["nonce"])
        return "ok" if state == "ok" else ("stale" if state == "stale" else "denied")
