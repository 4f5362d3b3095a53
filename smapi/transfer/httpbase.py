"""What every Transfer HTTP handler role stands on: body reading, refusals that keep the connection in sync,
authentication, routing and ranged answers. The roles (`exposure`, `toolstack`, `bitsverbs`) subclass
`HandlerBase`; `smapi.transfer.handlers.TransferHandler` combines them.

Every request is authenticated before its body is read; a request refused before its body was read closes the
connection (unless the body is empty), so a hostile client cannot make the server read gigabytes for nothing.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, ContextManager, Dict, Iterator, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from smapi.transfer.disk import Disk, Upload
from smapi.transfer.httpserve import BaseTransferHandler
from smapi.transfer.ranges import parse_range

log = logging.getLogger("smapi.transfer.http")

PIECE = 1 << 20
DRAIN_LIMIT = 64 << 10  # a refused body up to this size is read and dropped to keep the connection usable
LINGER_SECONDS = 2.0  # how long a refused upload's remaining bytes are read and dropped
OpenDisk = Callable[[str, bool], ContextManager[Disk]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class HandlerBase(BaseTransferHandler):
    server: Any  # a TransferServer whose `site` is an ExposureSite or a HostSite
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

    def _opened(self, vdi: str, writable: bool) -> ContextManager[Disk]:
        from smapi.interface.errors import SmapiError

        try:
            return self.server.site.open_disk(vdi, writable)
        except SmapiError as e:
            if in_use(e):  # a VM's datapath has it activated: a conflict, not a missing VDI
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



def in_use(e: BaseException) -> bool:
    """The API's VDIInUse or the engine's classic one."""
    from smapi.interface.classic_codes import CLASSIC_CODES
    from smapi.interface.errors import Backend_error, VDIInUse

    return isinstance(e, VDIInUse) or (isinstance(e, Backend_error)
                                       and e.classic_code == CLASSIC_CODES["VDIInUse"][0])


def one(query: Dict[str, list], key: str) -> Optional[str]:
    values = query.get(key)
    return values[0] if values else None


@contextlib.contextmanager
def upload_to(disk: Disk) -> Iterator[Upload]:
    """An upload that lands in `disk` when the block completes, and is dropped when it raises."""
    up = disk.begin_upload()
    try:
        yield up
    except BaseException:
        up.discard()
        raise
    up.commit()


class IterReader:
    """A read()-able view of an iterator of byte pieces (for the format decoders)."""

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
