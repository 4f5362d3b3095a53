"""Credentials and HTTP authentication of an exposure.

One random username and password per exposure (16 hex characters each, as the Transfer VM used, but drawn from
the `secrets` CSPRNG), used for HTTP auth and for iSCSI CHAP. HTTP accepts Digest (RFC 7616, MD5 or SHA-256,
qop=auth) always, and Basic only over TLS, where the clear-text password is protected.

Nonces are a timestamp signed with a per-exposure key: any thread can tell a nonce of ours from a forged one
without a table, and a nonce older than NONCE_LIFETIME is answered with `stale=true` (the client retries with the
fresh nonce of that challenge without asking the user). Replays are blocked by the nonce count: qop=auth is
required, and each (nonce, nc) pair is accepted once (`NonceCounts`). Counts may arrive out of order (a client
with several connections on one nonce), so not only the highest count is kept but every one seen in a window
below it; counts under the window are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

REALM = "Transfer VM"
NONCE_LIFETIME = 3600.0
NC_WINDOW = 256  # counts remembered per nonce below the highest one (out-of-order arrivals)
MAX_TRACKED_NONCES = 4096  # nonces in use at once; the oldest is forgotten (its later requests are refused)
_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_NC = re.compile(r"^[0-9a-fA-F]{8}$")
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


@dataclass
class _Counts:
    issued: float
    floor: int = 0  # every count <= floor is refused
    seen: Set[int] = field(default_factory=set)


class NonceCounts:
    """Which nonce counts each nonce has used; `use` accepts a (nonce, nc) pair once."""

    def __init__(self, window: int = NC_WINDOW, limit: int = MAX_TRACKED_NONCES) -> None:
        self.window = window
        self.limit = limit
        self._lock = threading.Lock()
        self._nonces: Dict[str, _Counts] = {}

    def use(self, nonce: str, nc: int, issued: float) -> bool:
        with self._lock:
            counts = self._nonces.get(nonce)
            if counts is None:
                self._forget_old()
                counts = self._nonces[nonce] = _Counts(issued)
            if nc <= counts.floor or nc in counts.seen:
                return False
            counts.seen.add(nc)
            if len(counts.seen) > self.window:
                counts.floor = min(counts.seen)
                counts.seen.discard(counts.floor)
            return True

    def _forget_old(self) -> None:
        horizon = time.time() - NONCE_LIFETIME
        for nonce in [n for n, c in self._nonces.items() if c.issued < horizon]:
            del self._nonces[nonce]
        while len(self._nonces) >= self.limit:
            oldest = min(self._nonces, key=lambda n: self._nonces[n].issued)
            del self._nonces[oldest]

    def __len__(self) -> int:
        return len(self._nonces)


class Authenticator:
    def __init__(self, credentials: Credentials, allow_basic: bool) -> None:
        self.credentials = credentials
        self.allow_basic = allow_basic
        self._key = secrets.token_bytes(32)
        self.counts = NonceCounts()

    # -- nonces -------------------------------------------------------------------------------------------------
    def _sign(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = f"{time.time():.3f}"
        return base64.b64encode(f"{stamp}:{self._sign(stamp)}".encode()).decode()

    def _issued(self, nonce: str) -> Optional[float]:
        """When we issued `nonce`, or None when it is not one of ours."""
        try:
            stamp, sig = base64.b64decode(nonce.encode(), validate=True).decode().split(":", 1)
            issued = float(stamp)
        except (ValueError, UnicodeDecodeError):
            return None
        return issued if hmac.compare_digest(sig, self._sign(stamp)) else None

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
        # qop=auth only: without a nonce count (RFC 2069 digests) a captured header could be replayed at will.
        if p.get("qop") != "auth" or "cnonce" not in p or not _NC.match(p.get("nc", "")):
            return "denied"
        expected = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        if not hmac.compare_digest(expected.encode(), p["response"].lower().encode()):
            return "denied"
        issued = self._issued(p["nonce"])
        if issued is None:
            return "denied"
        if time.time() - issued >= NONCE_LIFETIME:
            return "stale"
        # A replayed (nonce, nc) is refused; its challenge carries a fresh nonce, which a genuine client uses.
        return "ok" if self.counts.use(p["nonce"], int(p["nc"], 16), issued) else "denied"
