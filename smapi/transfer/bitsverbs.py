"""BITS upload sessions of a bits-mode exposure (`BITS_POST <url_path>[.vhd]`; `POST` with
`X-Http-Method-Override: BITS_POST` too).

A session lands in the VDI at Close-Session, all of it (a complete, valid upload) or nothing (see
`smapi.transfer.bits` for the protocol and `Disk.begin_upload` for the atomicity). A `.vhd` session feeds
`smapi.vhd.VhdReceiver`, the same reader every VHD upload and import goes through.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from smapi.sr.scratch import ScratchClosed
from smapi.transfer import bits as B
from smapi.transfer.exact import ExactImport
from smapi.transfer.formats import vhd_status
from smapi.transfer.httpbase import HandlerBase, HttpError, in_use
from smapi.transfer.ranges import RangeError, parse_content_range
from smapi.vhd.errors import VhdError
from smapi.vhd.receive import VhdReceiver


class BitsVerbs(HandlerBase):
    def _bits_error(self, e: B.BitsError) -> None:
        headers = {"BITS-Packet-Type": "Ack", "BITS-Error-Code": e.code, "BITS-Error-Context": e.context}
        sid = self.headers.get("BITS-Session-Id")
        if sid:
            headers["BITS-Session-Id"] = sid
        if e.received is not None:
            headers["BITS-Received-Content-Range"] = str(e.received)
        self._refuse(HttpError(e.status, str(e), headers))

    def _bits_ack(self, headers: Dict[str, str], status: int = 200) -> None:
        self.send_response(status)
        self.send_header("BITS-Packet-Type", "Ack")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _bits(self) -> None:
        site = self.server.site
        kind, _query = self._route()
        if kind not in ("raw", "vhd") or site.mode != "bits":
            raise HttpError(405, "BITS uploads are served by bits-mode exposures", {"Allow": "GET, HEAD, PUT"})
        ptype = (self.headers.get("BITS-Packet-Type") or "").strip().lower()
        site.sessions.expire(B.idle_limit())  # abandoned sessions give back their scratch space
        session = site.sessions.get(self.headers.get("BITS-Session-Id"))
        # Packets of an open session skip HTTP auth (auth.allow-bits-session); everything else authenticates.
        if session is None and not self._authorized():
            return
        if ptype == "ping":
            self._require_empty()
            self._bits_ack({})
        elif ptype == "create-session":
            self._require_empty()
            if not B.supported(self.headers.get("BITS-Supported-Protocols")):
                raise B.BitsError(400, B.E_INVALIDARG, f"the client does not offer BITS protocol {B.PROTOCOL}")
            if not site.disk.writable:
                raise B.BitsError(403, B.E_ACCESSDENIED, "the VDI is exposed read-only")
            new = site.sessions.create(urlsplit(self.path).path)
            if kind == "vhd":
                # The scratch is made by the first fragment: sessions that never send one cost no SR space.
                new.receiver = VhdReceiver(site.disk.size, lambda off, data: exact_of(new).write(off, data))
            self._bits_ack({"BITS-Protocol": B.PROTOCOL, "BITS-Session-Id": new.id, "Accept-Encoding": "Identity"})
        elif ptype == "fragment":
            self._bits_fragment(session, kind)
        elif ptype in ("close-session", "cancel-session"):
            self._require_empty()
            if session is None:
                raise B.BitsError(400, B.BG_E_SESSION_NOT_FOUND, "no such BITS session")
            site.sessions.remove(session.id)
            with session.lock:
                if ptype == "cancel-session":
                    session.discard()
                else:
                    self._close_session(session)
            self._bits_ack(B.headers_for(session))
        else:
            raise B.BitsError(400, B.E_INVALIDARG, f"unknown BITS-Packet-Type {ptype[:40]!r}")

    @staticmethod
    def _close_session(session: B.Session) -> None:
        """Land the session's fragments in the VDI: all of them (a complete, valid upload) or none."""
        if session.total is not None and session.received < session.total:
            session.discard()
            raise B.BitsError(400, B.E_INVALIDARG, f"Close-Session after {session.received} of {session.total} "
                                                   f"bytes: the upload is dropped", B.CONTEXT_APPLICATION)
        try:
            if session.receiver is not None:
                session.receiver.finish()
                if session.upload is not None and not session.receiver.is_differencing:
                    exact_of(session).fill_gaps()  # a dynamic VHD is the whole disk: unmarked sectors read zero
        except VhdError as e:
            session.discard()
            raise B.BitsError(400, B.E_INVALIDARG, str(e), B.CONTEXT_APPLICATION) from None
        try:
            if session.upload is not None:  # None: no fragment came (an empty upload)
                session.upload.commit()
        except ScratchClosed:
            raise B.BitsError(400, B.BG_E_SESSION_NOT_FOUND, "the session was dropped") from None
        except Exception as e:
            if in_use(e):  # a VM started on the VDI during the session: the upload is dropped
                raise B.BitsError(409, B.E_ACCESSDENIED, str(e), B.CONTEXT_APPLICATION) from None
            raise

    def _require_empty(self) -> None:
        if self._content_length(required=False):
            raise B.BitsError(400, B.E_INVALIDARG, "this BITS packet must have an empty body")

    def _bits_fragment(self, session: Optional[B.Session], kind: str) -> None:
        site = self.server.site
        if session is None:
            raise B.BitsError(400, B.BG_E_SESSION_NOT_FOUND, "Fragment without an open BITS-Session-Id")
        if session.path != urlsplit(self.path).path:
            raise B.BitsError(400, B.E_INVALIDARG, "the session belongs to another URL")
        raw_range = self.headers.get("Content-Range")
        if raw_range is None:
            raise B.BitsError(400, B.E_INVALIDARG, "Fragment without Content-Range")
        try:
            start, end, total = parse_content_range(raw_range)
        except RangeError as e:
            raise B.BitsError(400, B.E_INVALIDARG, str(e)) from None
        length = self._content_length()
        if length != end - start + 1:
            raise B.BitsError(400, B.E_INVALIDARG, f"Content-Range covers {end - start + 1} bytes, "
                                                   f"Content-Length is {length}")
        if length > B.MAX_FRAGMENT:
            raise B.BitsError(413, B.BG_E_TOO_LARGE, f"fragments are limited to {B.MAX_FRAGMENT} bytes")
        if kind == "raw" and total > site.disk.size:
            raise B.BitsError(413, B.BG_E_TOO_LARGE, f"the upload ({total} bytes) is larger than the disk "
                                                     f"({site.disk.size} bytes)")
        with session.lock:
            session.touched = time.monotonic()
            plan = B.plan_fragment(session, start, end, total)
            session.ensure_upload(site.disk.begin_upload)
            if kind == "vhd" and session.receiver.length is None:
                session.receiver.length = total  # a truncated upload is refused before data lands
            skip, offset = plan.skip, plan.offset
            try:
                for data in self._body(length):
                    if skip:
                        cut = min(skip, len(data))
                        data, skip = data[cut:], skip - cut
                    if not data:
                        continue
                    if kind == "raw":
                        session.upload.write(offset, data)
                    else:
                        session.receiver.feed(data)
                    offset += len(data)
                    session.received = offset
            except ScratchClosed:
                raise B.BitsError(400, B.BG_E_SESSION_NOT_FOUND, "the session was dropped") from None
            except VhdError as e:
                site.sessions.remove(session.id)
                session.discard()
                status = vhd_status(e)
                raise B.BitsError(status if status != 416 else 400, B.E_INVALIDARG, str(e),
                                  B.CONTEXT_APPLICATION, received=session.received) from None
            except (OSError, ValueError) as e:
                if isinstance(e, ConnectionError):
                    raise
                raise B.BitsError(500, B.E_INVALIDARG, f"writing the fragment failed: {e}", B.CONTEXT_APPLICATION,
                                  received=session.received) from None
            self._bits_ack({"BITS-Session-Id": session.id, "BITS-Received-Content-Range": str(session.received)})


def exact_of(session: B.Session) -> Any:
    """The session's ExactImport, made in front of its upload (which the first fragment made) on first use."""
    if session.exact is None:
        session.exact = ExactImport(session.upload)
    return session.exact
