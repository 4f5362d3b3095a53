"""The HTTP layer: one threaded server per exposure (and one for the host's toolstack endpoints).

stdlib `ThreadingHTTPServer` with a hand-written handler (reference §3.2: lowest risk, no parser that rejects
`BITS_POST`). What it adds to the stdlib:

* TLS with the handshake in the connection's own thread (a stalled handshake must not block `accept`);
* authentication on every request (`smapi.transfer.auth`) before any body is read;
* an activity tracker: open connections and the time the last one ended, for `timeout_minutes`;
* a bound on concurrent connections (the Transfer VM allowed 3; smapi allows `max_connections`, default 8):
  further clients get 503 and are closed;
* request bodies only with Content-Length (chunked -> 411, like xapi), read in bounded pieces.

The routes and verbs live in `smapi.transfer.handlers`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Tuple

from smapi.rpc.bounded import RequestDeadlineMixin

log = logging.getLogger("smapi.transfer.http")

REQUEST_IDLE_TIMEOUT = 120.0  # seconds a connection may sit idle between (or inside) requests


class Activity:
    """Open connections and when the last one ended, shared by the server and the idle watchdog."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.last = time.monotonic()

    def begin(self) -> bool:
        with self._lock:
            self.open += 1
            self.last = time.monotonic()
            return True

    def end(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)
            self.last = time.monotonic()

    def touch(self) -> None:
        with self._lock:
            self.last = time.monotonic()

    def idle_for(self) -> Optional[float]:
        """Seconds since the last connection ended; None while any is open."""
        with self._lock:
            return None if self.open else time.monotonic() - self.last


class TransferServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 16

    def __init__(self, address: Tuple[str, int], handler: type, site: Any, *,
                 ssl_context: Optional[ssl.SSLContext] = None, max_connections: int = 8) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self.site = site
        self.ssl_context = ssl_context
        self.activity = Activity()
        self.max_connections = max_connections

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> Tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # The handshake happens in the worker thread (Handler.setup), not here in the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        self.activity.begin()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.activity.end()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.activity.end()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s failed", client_address, exc_info=True)


class BaseTransferHandler(RequestDeadlineMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "smapi-transfer/1.0"
    server: TransferServer
    timeout = REQUEST_IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()  # applies self.timeout to the socket
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                log.info("TLS handshake with %s failed: %s", self.client_address, e)
                self.close_connection = True
                raise ConnectionAbortedError from e

    def handle(self) -> None:
        if self.server.activity.open > self.server.max_connections:
            self.close_connection = True
            try:
                self.raw_requestline = self.rfile.readline(65537)
                if self.parse_request():
                    self.send_simple(503, "too many connections")
            except OSError:
                pass
            return
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError) as e:
            log.info("connection from %s ended: %s", self.client_address, e)

    def handle_one_request(self) -> None:
        self.server.activity.touch()
        super().handle_one_request()
        self.server.activity.touch()

    def parse_request(self) -> bool:
        # The request line and headers must arrive within the deadline (a client trickling them one byte at a time
        # would otherwise hold a thread forever); a body may take as long as the idle timeout allows per read.
        ok = super().parse_request()
        self.request_received()
        return ok

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.info("%s %s", self.address_string(), format % args)

    # -- response helpers ---------------------------------------------------------------------------------------
    def send_simple(self, status: int, message: str = "", headers: Optional[dict] = None,
                    close: bool = False) -> None:
        body = (message + "\n").encode() if message else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
