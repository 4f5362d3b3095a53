"""HTTP verbs of an exposure and of the host's toolstack endpoints.

Exposure URLs (`<url_path>` = `/vdi_uuid_<vdi>`):

    GET/HEAD <url_path>        the raw disk; single Range -> 206 + Content-Range, past the end -> 416
    PUT      <url_path>        (http mode) whole disk (Content-Length == size, else 416) or a window given by
                               Content-Range (`*` -> 501, malformed or inconsistent -> 400, total > size -> 416)
    GET/HEAD <url_path>.vhd    the VHD view: dynamic, or differencing with `?base=<vdi uuid>`
    PUT      <url_path>.vhd    (http mode) a dynamic or differencing VHD applied to the disk
    BITS_POST <url_path>[.vhd] (bits mode) BITS upload sessions; `POST` + `X-Http-Method-Override: BITS_POST` too

Host (toolstack-compatible) URLs, `smapi transfer serve-host`:

    GET /export_raw_vdi?vdi=<uuid>&format=raw|vhd|tar[&base=<uuid>]
    PUT /import_raw_vdi?vdi=<uuid>&format=raw|vhd|tar[&chunked]   (or sr_uuid=<uuid> instead of vdi=: a new VDI)

Uploads are atomic where the protocol sends a whole body: a PUT (whole disk, `.vhd`, import) lands in the VDI only
once its body arrived complete and valid, a Content-Range PUT lands its whole range or nothing, a BITS session
lands at Close-Session (see `Disk.begin_upload`). A client that goes away mid-body leaves the VDI unchanged.

Every request is authenticated before its body is read; a request refused before its body was read closes the
connection (unless the body is empty), so a hostile client cannot make the server read gigabytes for nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from typing import Any, Callable, ContextManager, Dict, Iterator, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from smapi.sr.scratch import ScratchClosed
from smapi.transfer import bits as B
from smapi.transfer.auth import Authenticator
from smapi.transfer.disk import Disk, Upload
from smapi.transfer.httpserve import BaseTransferHandler
from smapi.transfer.ranges import RangeError, parse_content_range, parse_range, put_range
from smapi.transfer.vhdupload import VhdReceiver, VhdUploadError, footer_copy
from smapi.transfer.vhdview import VhdLayout, differencing_view, dynamic_view
from smapi.vhd.constants import DISK_DIFF

log = logging.getLogger("smapi.transfer.http")

PIECE = 1 << 20
DRAIN_LIMIT = 64 << 10  # a refused body up to this size is read and dropped to keep the connection usable
LINGER_SECONDS = 2.0  # how long a refused upload's remaining bytes are read and dropped
OpenDisk = Callable[[str, bool], ContextManager[Disk]]
IMPORTED_NAME = "Imported VDI"  # xapi's name_label for a VDI created by /import_raw_vdi


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class ExposureSite:
    """What one exposure serves: its disk under `/vdi_uuid_<vdi>` and `.vhd`."""

    toolstack = False

    def __init__(self, disk: Disk, vdi_uuid: str, mode: str, auth: Authenticator, open_disk: OpenDisk) -> None:
        self.disk = disk
        self.vdi_uuid = vdi_uuid
        self.mode = mode
        self.auth = auth
        self.open_disk = open_disk
        self.sessions = B.Sessions()
        self.url_path = f"/vdi_uuid_{vdi_uuid}"
        self._layout: Optional[Tuple[int, VhdLayout]] = None

    def dynamic_layout(self) -> VhdLayout:
        # Cached until the disk is written: qemu's curl driver sends many Range GETs for one download.
        gen = self.disk.generation
        if self._layout is None or self._layout[0] != gen:
            self._layout = (gen, dynamic_view(self.disk, self.vdi_uuid))
        return self._layout[1]


class HostSite:
    """The toolstack endpoints: any VDI of an SR attached on this host, by uuid."""

    toolstack = True
    mode = "http"

    def __init__(self, auth: Authenticator, open_disk: OpenDisk,
                 create_vdi: Optional[Callable[[str, int], str]] = None,
                 destroy_vdi: Optional[Callable[[str], None]] = None) -> None:
        from smapi.transfer import locate

        self.auth = auth
        self.open_disk = open_disk
        self.create_vdi = create_vdi or (lambda sr, size: locate.create_vdi(sr, size, IMPORTED_NAME))
        self.destroy_vdi = destroy_vdi or locate.destroy_vdi


class TransferHandler(BaseTransferHandler):
    _expect_continue = False
    _body_started = False
    _body_left = 0

    def handle_one_request(self) -> None:
        # Per-request state: the handler object serves every request of a keep-alive connection.
        self._expect_continue = False
        self._body_started = False
        self._body_left = 0
        super().handle_one_request()

    # -- plumbing ---------------------------------------------------------------------------------------------
    def handle_expect_100(self) -> bool:
        # Answer "100 Continue" only once the request is authenticated and acceptable (see _start_body).
        self._expect_continue = True
        return True

    def _start_body(self) -> None:
        if self._expect_continue:
            self.send_response_only(100)
            self.end_headers()
            self._expect_continue = False

    def _content_length(self, required: bool = True) -> int:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise HttpError(411, "chunked request bodies are not accepted: send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            if required:
                raise HttpError(411, "Content-Length is required")
            return 0
        if not raw.strip().isdigit() or len(raw.strip()) > 20:
            raise HttpError(400, f"bad Content-Length {raw[:40]!r}")
        return int(raw)

    def _body(self, length: int) -> Iterator[bytes]:
        """The request body in pieces; a short body (client gone) raises ConnectionError."""
        self._start_body()
        self._body_started = True
        self._body_left = length
        while self._body_left > 0:
            data = self.rfile.read(min(PIECE, self._body_left))
            if not data:
                self.close_connection = True
                raise ConnectionError(f"the client sent {length - self._body_left} of {length} body bytes")
            self._body_left -= len(data)
            yield data

    def _refuse(self, err: HttpError) -> None:
        """Answer an error; drop or drain the unread body so the connection stays in sync."""
        close = False
        try:
            pending = self._body_left if self._body_started else self._content_length(required=False)
        except HttpError:
            pending, close = 1, True
        if self._expect_continue:
            close = close or pending > 0  # the client has not sent its body; it may still do so after a timeout
        elif 0 < pending <= DRAIN_LIMIT:
            with contextlib.suppress(OSError):
                self.rfile.read(pending)
        elif pending > 0:
            close = True
        self._body_left = 0
        self._body_started = True
        self.send_simple(err.status, str(err), err.headers, close=close)
        if close and pending > 0 and not self._expect_continue:
            self._linger()

    def _linger(self) -> None:
        """Half-close and drop what the client is still sending, for a bounded time.

        Closing a socket with unread input makes the kernel send RST, and the client then loses the error
        response it has not read yet (curl reports no status at all). Apache's lingering close, in short.
        """
        import socket
        import time

        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            self.connection.settimeout(LINGER_SECONDS)
            while time.monotonic() < deadline and self.connection.recv(PIECE):
                pass

    def _authorized(self) -> bool:
        state = self.server.site.auth.check(self.headers.get("Authorization"), self.command, self.path)
        if state == "ok":
            return True
        challenges = self.server.site.auth.challenges(stale=state == "stale")
        self._refuse_auth(challenges)
        return False

    def _refuse_auth(self, challenges: list) -> None:
        err = HttpError(401, "authentication required")
        close = False
        try:
            pending = self._content_length(required=False)
        except HttpError:
            pending, close = 1, True
        if not self._expect_continue and 0 < pending <= DRAIN_LIMIT:
            with contextlib.suppress(OSError):
                self.rfile.read(pending)
        elif pending > 0:
            close = True
        self.send_response(401)
        for c in challenges:
            self.send_header("WWW-Authenticate", c)
        body = (str(err) + "\n").encode()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if close and pending > 0 and not self._expect_continue:
            self._linger()  # the client is still sending its body: let it read the 401 instead of a reset

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except HttpError as e:
            self._refuse(e)
        except RangeError as e:
            self._refuse(HttpError(e.status, str(e)))
        except VhdUploadError as e:
            self._refuse(HttpError(e.status, str(e)))
        except B.BitsError as e:
            self._bits_error(e)
        except (ConnectionError, TimeoutError) as e:
            log.info("%s %s: connection lost: %s", self.command, self.path, e)
            self.close_connection = True
        except PermissionError as e:
            self._refuse(HttpError(403, str(e)))
        except Exception as e:  # a failure of the disk or a bug: answer, log, keep serving
            if _in_use(e):  # an upload refused at commit: a VM's datapath activated the VDI meanwhile
                self._refuse(HttpError(409, str(e)))
                return
            log.exception("%s %s failed", self.command, self.path)
            self._refuse(HttpError(500, f"{type(e).__name__}: {e}"))

    def _route(self) -> Tuple[str, Dict[str, list]]:
        """("raw" | "vhd" | "export" | "import", query) or 404."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        site = self.server.site
        if site.toolstack:
            if parts.path == "/export_raw_vdi":
                return "export", query
            if parts.path == "/import_raw_vdi":
                return "import", query
        else:
            if parts.path == site.url_path:
                return "raw", query
            if parts.path == site.url_path + ".vhd":
                return "vhd", query
        raise HttpError(404, f"nothing at {parts.path[:200]}")

    # -- verbs ----------------------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self._authorized():
            self._run(self._get)

    def do_PUT(self) -> None:
        if self._authorized():
            self._run(self._put)

    def do_BITS_POST(self) -> None:
        self._run(self._bits)

    def do_POST(self) -> None:
        if (self.headers.get("X-Http-Method-Override") or "").upper() == "BITS_POST":
            self.do_BITS_POST()
            return
        self._refuse(HttpError(405, "POST is not served here", {"Allow": "GET, HEAD, PUT, BITS_POST"}))

    def do_DELETE(self) -> None:
        self._refuse(HttpError(405, "DELETE is not served here", {"Allow": "GET, HEAD, PUT, BITS_POST"}))

    do_OPTIONS = do_DELETE
    do_PATCH = do_DELETE

    # -- GET / HEAD -------------------------------------------------------------------------------------------
    def _get(self) -> None:
        kind, query = self._route()
        site = self.server.site
        if kind == "raw":
            self._send_ranged(site.disk.size, "application/octet-stream",
                              lambda a, b: _disk_pieces(site.disk, a, b))
        elif kind == "vhd":
            base = _one(query, "base")
            if base is None:
                layout = site.dynamic_layout()
                self._send_ranged(layout.length, "application/vhd",
                                  lambda a, b: layout.pieces(a, b, site.disk))
            else:
                with self._opened(base, False) as base_disk:
                    layout = differencing_view(site.disk, site.vdi_uuid, base_disk, base)
                    self._send_ranged(layout.length, "application/vhd",
                                      lambda a, b: layout.pieces(a, b, site.disk))
        elif kind == "export":
            self._export(query)
        else:
            raise HttpError(405, "use PUT here", {"Allow": "PUT"})

    def _opened(self, vdi: str, writable: bool) -> ContextManager[Disk]:
        from smapi.interface.errors import SmapiError

        try:
            return self.server.site.open_disk(vdi, writable)
        except SmapiError as e:
            if _in_use(e):  # a VM's datapath has it activated: a conflict, not a missing VDI
                raise HttpError(409, f"VDI {vdi} is in use: {e}") from None
            raise HttpError(404, f"VDI {vdi}: {e}") from None

    def _send_ranged(self, size: int, ctype: str, pieces: Callable[[int, int], Iterator[bytes]]) -> None:
        rng = parse_range(self.headers.get("Range"), size)
        if rng is None:
            start, end, status = 0, size, 200
        else:
            start, end, status = rng[0], rng[1] + 1, 206
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        for piece in pieces(start, end):
            self.wfile.write(piece)

    # -- PUT ------------------------------------------------------------------------------------------------------
    def _put(self) -> None:
        kind, query = self._route()
        site = self.server.site
        if kind == "import":
            self._import(query)
            return
        if kind not in ("raw", "vhd"):
            raise HttpError(405, "PUT is not served here")
        if site.mode != "http":
            raise HttpError(405, f"PUT is not served in {site.mode} mode: use BITS_POST", {"Allow": "GET, HEAD, "
                                                                                             "BITS_POST"})
        if not site.disk.writable:
            raise HttpError(403, "the VDI is exposed read-only")
        length = self._content_length()
        if kind == "raw":
            where = put_range(self.headers.get("Content-Range"), length, site.disk.size)
            with _upload(site.disk) as up:
                _write_body(up, where.offset, self._body(length))
        else:
            with _upload(site.disk) as up:
                _apply_vhd(up, self._body(length), length)
        self.send_simple(200)

    # -- toolstack endpoints -----------------------------------------------------------------------------------
    def _export(self, query: Dict[str, list]) -> None:
        vdi = _one(query, "vdi")
        if not vdi:
            raise HttpError(400, "Missing vdi query parameter")
        fmt = (_one(query, "format") or "raw").lower()
        base = _one(query, "base")
        if fmt not in ("raw", "vhd", "tar"):
            raise HttpError(404, f"Unknown format {fmt!r} (raw, vhd or tar)")
        if base and fmt != "vhd":
            raise HttpError(400, "base= is supported with format=vhd")
        from smapi.transfer import formats

        with self._opened(vdi, False) as disk, contextlib.ExitStack() as stack:
            base_disk = stack.enter_context(self._opened(base, False)) if base else None
            self.send_response(200)
            self.send_header("Content-Type", formats.CONTENT_TYPES[fmt])
            self.send_header("Content-Disposition", f'attachment; filename="{vdi}.{fmt}"')
            if fmt == "tar":
                # No length known in advance: the body ends when the connection closes (as xapi does).
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                formats.export_tar(disk, self.wfile)
                return
            layout = None
            if fmt == "vhd":
                layout = (differencing_view(disk, vdi, base_disk, base) if base_disk is not None
                          else dynamic_view(disk, vdi))
            length = layout.length if layout is not None else disk.size
            self.send_header("Content-Length", str(length))
            self.end_headers()
            pieces = layout.pieces(0, None, disk) if layout is not None else _disk_pieces(disk, 0, disk.size)
            for piece in pieces:
                self.wfile.write(piece)

    def _import(self, query: Dict[str, list]) -> None:
        fmt = (_one(query, "format") or "raw").lower()
        if fmt not in ("raw", "vhd", "tar"):
            raise HttpError(404, f"Unknown format {fmt!r} (raw, vhd or tar)")
        # vhd-tool's record protocol: selected by the query or by a cookie (vhd-tool sends `Cookie: chunked=true`).
        chunked = "chunked" in query or _cookie(self.headers.get("Cookie"), "chunked")
        if chunked and fmt != "raw":
            raise HttpError(404, "Cannot handle chunked VHD: the chunked protocol carries raw data")
        length: Optional[int] = self._content_length(required=not chunked)
        if chunked and self.headers.get("Content-Length") is None:
            length = None  # the stream's end marker ends the body
        vdi = _one(query, "vdi")
        created = None
        body: Optional[Iterator[bytes]] = None
        if not vdi:
            vdi, body = self._create_for_import(query, fmt, chunked, length)
            created = vdi
        try:
            with self._opened(vdi, True) as disk:
                if fmt == "raw" and not chunked and (length or 0) > disk.size:
                    raise HttpError(416, f"{length} bytes do not fit the {disk.size}-byte VDI")
                with _upload(disk) as up:
                    self._import_body(up, fmt, chunked, length, body)
        except BaseException:
            if created is not None:
                try:
                    self.server.site.destroy_vdi(created)  # nothing half-imported stays behind
                except Exception:  # noqa: BLE001 - the import's own error is the one to report
                    log.exception("destroying VDI %s after its import failed", created)
            raise
        self.send_simple(200, vdi)

    def _create_for_import(self, query: Dict[str, list], fmt: str, chunked: bool,
                           length: Optional[int]) -> Tuple[str, Optional[Iterator[bytes]]]:
        """No vdi=: like xapi, an import with sr_uuid (or sr_id) creates "Imported VDI" of the image's size: the
        Content-Length of a raw body, the virtual size in a VHD's footer copy (its first 512 bytes, read here: the
        body is returned with them put back in front). Returns the VDI and that body (None: not read yet)."""
        from smapi.interface.errors import SmapiError, Sr_not_attached

        sr = _one(query, "sr_uuid") or _one(query, "sr_id")
        if not sr:
            raise HttpError(400, "Missing vdi query parameter (or sr_uuid, to import into a new VDI)")
        body: Optional[Iterator[bytes]] = None
        if fmt == "raw" and not chunked and length:
            size = length
        elif fmt == "vhd" and length:
            pieces = self._body(length)
            head = b""
            for piece in pieces:
                head += piece
                if len(head) >= 512:
                    break
            size = footer_copy(head[:512]).current_size
            body = itertools.chain([head], pieces)
        else:
            raise HttpError(400, "importing into a new VDI needs format=raw or format=vhd with a Content-Length "
                                 "(a tar stream or the chunked protocol does not say the size)")
        try:
            return self.server.site.create_vdi(sr, size), body
        except Sr_not_attached as e:
            raise HttpError(404, f"cannot create a VDI in SR {sr}: {e}") from None
        except SmapiError as e:
            raise HttpError(400, f"cannot create a {size}-byte VDI in SR {sr}: {e}") from None

    def _import_body(self, up: Upload, fmt: str, chunked: bool, length: Optional[int],
                     body: Optional[Iterator[bytes]] = None) -> None:
        """`body`: the request body when part of it was read already (to learn a new VDI's size)."""
        from smapi.transfer import formats
        from smapi.transfer.exact import ExactImport

        if chunked:
            self._receive_chunked(up, length)
        elif fmt == "raw":
            _write_body(up, 0, body or self._body(length or 0))
        elif fmt == "vhd":
            _apply_vhd(up, body or self._body(length or 0), length or 0)
        else:
            exact = ExactImport(up)
            try:
                formats.import_tar(exact, _IterReader(self._body(length or 0)))
                exact.fill_gaps()  # the format leaves zero chunks out; the VDI may hold data there
            except formats.XvaFormatError as e:
                raise HttpError(400, str(e)) from None

    def _receive_chunked(self, up: Upload, length: Optional[int]) -> None:
        from smapi.transfer import chunked

        self._start_body()
        self._body_started = True
        if length is None:
            # Unknown length: answer, then close; a refusal must not leave the rest of the stream to be parsed as
            # the next request (pretend a large remainder, so _refuse closes and lingers).
            self.close_connection = True
            self._body_left = DRAIN_LIMIT + 1
        else:
            self._body_left = length

        def read(n: int) -> bytes:
            data = self.rfile.read(n)
            if length is not None:
                self._body_left -= len(data)
            return data

        try:
            chunked.receive(read, up.write, up.size, length)
        except chunked.ChunkedError as e:
            raise HttpError(e.status, str(e)) from None
        self._body_left = 0

    # -- BITS -------------------------------------------------------------------------------------------------
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
                new.receiver = VhdReceiver(site.disk.size, lambda off, data: _exact_of(new).write(off, data))
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
                if session.upload is not None and session.receiver.footer.disk_type != DISK_DIFF:
                    _exact_of(session).fill_gaps()  # a dynamic VHD is the whole disk: unmarked sectors read zero
        except VhdUploadError as e:
            session.discard()
            raise B.BitsError(400, B.E_INVALIDARG, str(e), B.CONTEXT_APPLICATION) from None
        try:
            if session.upload is not None:  # None: no fragment came (an empty upload)
                session.upload.commit()
        except ScratchClosed:
            raise B.BitsError(400, B.BG_E_SESSION_NOT_FOUND, "the session was dropped") from None
        except Exception as e:
            if _in_use(e):  # a VM started on the VDI during the session: the upload is dropped
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
            except VhdUploadError as e:
                site.sessions.remove(session.id)
                session.discard()
                raise B.BitsError(e.status if e.status != 416 else 400, B.E_INVALIDARG, str(e),
                                  B.CONTEXT_APPLICATION, received=session.received) from None
            except (OSError, ValueError) as e:
                if isinstance(e, ConnectionError):
                    raise
                raise B.BitsError(500, B.E_INVALIDARG, f"writing the fragment failed: {e}", B.CONTEXT_APPLICATION,
                                  received=session.received) from None
            self._bits_ack({"BITS-Session-Id": session.id, "BITS-Received-Content-Range": str(session.received)})


def _in_use(e: BaseException) -> bool:
    """The API's VDIInUse or the engine's classic one."""
    from smapi.interface.classic_codes import CLASSIC_CODES
    from smapi.interface.errors import Backend_error, VDIInUse

    return isinstance(e, VDIInUse) or (isinstance(e, Backend_error)
                                       and e.classic_code == CLASSIC_CODES["VDIInUse"][0])


def _cookie(header: Optional[str], name: str) -> bool:
    if not header:
        return False
    from http.cookies import CookieError, SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return False
    return name in jar


def _one(query: Dict[str, list], key: str) -> Optional[str]:
    values = query.get(key)
    return values[0] if values else None


def _disk_pieces(disk: Disk, start: int, end: int) -> Iterator[bytes]:
    pos = start
    while pos < end:
        n = min(PIECE, end - pos)
        yield disk.read(pos, n)
        pos += n


@contextlib.contextmanager
def _upload(disk: Disk) -> Iterator[Upload]:
    """An upload that lands in `disk` when the block completes, and is dropped when it raises."""
    up = disk.begin_upload()
    try:
        yield up
    except BaseException:
        up.discard()
        raise
    up.commit()


def _write_body(up: Upload, offset: int, body: Iterator[bytes]) -> None:
    for data in body:
        up.write(offset, data)
        offset += len(data)


def _exact_of(session: B.Session) -> Any:
    """The session's ExactImport, made in front of its upload (which the first fragment made) on first use."""
    from smapi.transfer.exact import ExactImport

    if session.exact is None:
        session.exact = ExactImport(session.upload)
    return session.exact


def _apply_vhd(up: Upload, body: Iterator[bytes], length: int) -> None:
    from smapi.transfer.exact import ExactImport

    exact = ExactImport(up)
    receiver = VhdReceiver(up.size, exact.write, length=length)
    for data in body:
        receiver.feed(data)
    receiver.finish()
    if receiver.footer.disk_type != DISK_DIFF:
        exact.fill_gaps()  # a dynamic VHD is the whole disk: its unmarked sectors read zero, whatever the VDI held


class _IterReader:
    """A read()-able view of an iterator of byte pieces (for tarfile's stream mode)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._it = pieces
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def serve_open_disk_factory(open_handle: Callable[[str, bool], Any]) -> OpenDisk:
    """An OpenDisk from a function returning driver data handles. The VDI is opened by the call itself, so a
    missing VDI raises there (and becomes a 404), not later inside a `with`."""

    def opener(vdi: str, writable: bool) -> ContextManager[Disk]:
        disk = Disk(open_handle(vdi, writable), writable)
        return _Closing(disk)

    return opener


class _Closing:
    def __init__(self, disk: Disk) -> None:
        self.disk = disk

    def __enter__(self) -> Disk:
        return self.disk

    def __exit__(self, *exc: Any) -> None:
        self.disk.close()


__all__ = ["ExposureSite", "HostSite", "TransferHandler", "HttpError", "serve_open_disk_factory"]
