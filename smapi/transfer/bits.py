"""BITS upload sessions (BITS 1.5 upload protocol, method BITS_POST).

Fragments are applied as the spec says: sequential from offset 0, an overlap with what was already received is
trimmed (only the new part is written), a gap is refused with 416 and `BITS-Received-Content-Range` naming the
next byte expected, so a client resumes exactly where the server is. (The Transfer VM wrote raw fragments at any
offset; following the spec costs nothing and makes an interrupted upload resumable.) Packet types match case-
insensitively, as the Transfer VM's tests require.

A session is bound to the URL that created it (raw disk or `.vhd`); a `.vhd` session feeds a `VhdReceiver`.

A session's fragments accumulate in an upload scratch (`Disk.begin_upload`): Close-Session commits them into the
VDI at once, Cancel-Session drops them, and so does a session left idle for `idle_limit()` seconds
(`SMAPI_TRANSFER_BITS_IDLE`, default a day), one evicted when MAX_SESSIONS are open, or one still open when the
exposure stops. Until Close-Session the VDI holds none of the session's bytes.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

PROTOCOL = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
E_INVALIDARG = "0x80070057"
E_ACCESSDENIED = "0x80070005"
BG_E_TOO_LARGE = "0x80200020"
BG_E_SESSION_NOT_FOUND = "0x8020001F"
CONTEXT_SERVER = "0x5"  # BG_ERROR_CONTEXT_REMOTE_FILE: the server refused the request
CONTEXT_APPLICATION = "0x7"  # BG_ERROR_CONTEXT_REMOTE_APPLICATION: applying the data failed
MAX_SESSIONS = 100
MAX_FRAGMENT = 256 << 20  # bounds one request's body; clients send 2 MiB (Transfer VM) .. a few MiB (Windows)
DEFAULT_IDLE = 24 * 3600.0  # Windows BITS retries for hours before giving up; a day keeps its uploads resumable


def idle_limit() -> float:
    try:
        return float(os.environ.get("SMAPI_TRANSFER_BITS_IDLE", DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE


class BitsError(Exception):
    def __init__(self, status: int, code: str, message: str, context: str = CONTEXT_SERVER,
                 received: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.context = context
        self.received = received


@dataclass
class Session:
    id: str
    path: str
    received: int = 0
    total: Optional[int] = None
    receiver: Any = None  # VhdReceiver for a .vhd session
    upload: Any = None  # the Upload collecting the fragments until Close-Session (made by the first fragment)
    exact: Any = None  # the ExactImport in front of `upload` for a .vhd session (see smapi.transfer.exact)
    lock: threading.Lock = field(default_factory=threading.Lock)
    created: float = field(default_factory=time.monotonic)
    touched: float = field(default_factory=time.monotonic)
    dropped: bool = False
    _drop_lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_upload(self, make: Callable[[], Any]) -> Any:
        """The session's upload, made on first use; a dropped session never gets one (it would leak)."""
        with self._drop_lock:
            if self.dropped:
                raise BitsError(400, BG_E_SESSION_NOT_FOUND, "the BITS session was dropped")
            if self.upload is None:
                self.upload = make()
            return self.upload

    def discard(self) -> None:
        """Drop what the session received (Cancel-Session, timeout, eviction, a failed upload)."""
        with self._drop_lock:
            self.dropped = True
            upload = self.upload
        if upload is not None:
            upload.discard()


class Sessions:
    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.limit = limit
        self.evicted = 0

    def create(self, path: str) -> Session:
        # uuid4 from the CSPRNG: an open session id lets later packets skip HTTP auth (as in the Transfer VM).
        sid = "{" + str(uuid.UUID(bytes=secrets.token_bytes(16), version=4)) + "}"
        dropped: List[Session] = []
        with self._lock:
            while len(self._sessions) >= self.limit:
                dropped.append(self._sessions.popitem(last=False)[1])
                self.evicted += 1
            session = Session(sid, path)
            self._sessions[sid] = session
        for old in dropped:
            old.discard()
        return session

    def expire(self, idle: float) -> int:
        """Drop (and discard the uploads of) sessions without a packet for `idle` seconds."""
        horizon = time.monotonic() - idle
        with self._lock:
            stale = [s for s in self._sessions.values() if s.touched < horizon]
            for s in stale:
                del self._sessions[s.id]
        for s in stale:
            s.discard()
        return len(stale)

    def get(self, sid: Optional[str]) -> Optional[Session]:
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid.strip())

    def remove(self, sid: str) -> Optional[Session]:
        with self._lock:
            return self._sessions.pop(sid.strip(), None)

    def __len__(self) -> int:
        return len(self._sessions)


def supported(protocols: Optional[str]) -> bool:
    return protocols is not None and PROTOCOL in protocols.lower()


@dataclass(frozen=True)
class FragmentPlan:
    """What to do with one fragment's body: skip `skip` bytes, apply the next `apply` bytes at `offset`."""

    skip: int
    apply: int
    offset: int


def plan_fragment(session: Session, start: int, end: int, total: int) -> FragmentPlan:
    if session.total is None:
        session.total = total
    elif total != session.total:
        raise BitsError(400, E_INVALIDARG, f"fragment total {total} differs from the session's {session.total}",
                        received=session.received)
    if start > session.received:
        raise BitsError(416, E_INVALIDARG, f"fragment starts at {start} but the server has {session.received} "
                                           f"bytes: resend from there", received=session.received)
    if end < session.received:
        return FragmentPlan(end - start + 1, 0, session.received)  # all of it is here already
    skip = session.received - start
    return FragmentPlan(skip, end - start + 1 - skip, session.received)


def headers_for(session: Optional[Session]) -> Dict[str, str]:
    return {"BITS-Session-Id": session.id} if session else {}
