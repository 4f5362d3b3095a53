"""The XML-RPC transport: HTTP POST of rpclib-style calls, over a Unix socket or loopback TCP.

Every answer with a body is a Status envelope (see `smapi.rpc.xmlcodec`), including HTTP-level refusals
(413, 404, 405, ...), so any caller that can read rpclib XML gets a typed error. Each connection is handled in
its own thread: a slow storage operation (a scan, a coalesce) must not stall unrelated calls.
"""

from __future__ import annotations

import logging
import socket
import socketserver
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Optional

from smapi.core.dispatcher import Dispatcher
from smapi.interface.errors import Bad_request, Internal_error, SmapiError
from smapi.rpc.bounded import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_DEADLINE,
    ConnectionCapMixin,
    RequestDeadlineMixin,
)
from smapi.rpc.listen import (
    DEFAULT_MAX_REQUEST,
    DEFAULT_REQUEST_TIMEOUT,
    AddressMixin,
    QuietHandlerMixin,
    drain_body,
    remove_stale_socket,
    tcp_family,
)
from smapi.rpc.xmlcodec import (
    NotRepresentable,
    decode_call,
    decode_response,
    encode_call,
    encode_failure,
    encode_success,
    encode_value,
)

__all__ = [
    "XmlRpcServer", "decode_call", "decode_response", "encode_call", "encode_failure", "encode_success",
    "encode_value", "handle_request", "make_xmlrpc_server",
]

log = logging.getLogger("smapi.xmlrpc")

RPC_PATHS = ("/", "/RPC2")
CONTENT_TYPE = "text/xml"


def handle_request(dispatcher: Dispatcher, body: bytes) -> bytes:
    """One methodCall in, one methodResponse out; never raises."""
    try:
        method_name, params = decode_call(body)
        _, method = dispatcher.resolve(method_name)
        value = dispatcher.call(method_name, params)
        try:
            return encode_success(value, method.result.type if method.result else None)
        except NotRepresentable as e:
            raise Internal_error(f"{method_name}: the result cannot be sent over XML-RPC: {e}") from None
    except SmapiError as e:
        return encode_failure(e)
    except Exception as e:  # a bug in the transport itself: still answer, still typed
        log.exception("XML-RPC request failed")
        return encode_failure(Internal_error(f"{type(e).__name__}: {e}"))


class _Handler(RequestDeadlineMixin, QuietHandlerMixin, BaseHTTPRequestHandler):
    log_name = "smapi.xmlrpc"

    # HTTP/1.1 keeps connections alive for clients that reuse them (xmlrpc.client, xapi); every response
    # therefore carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "smapi-xmlrpc"
    server: XmlRpcServer

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler applies it to the socket
        super().setup()

    def _send(self, status: int, body: bytes, close: bool = False, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        # Replaces http.server's HTML error page (bad request line, unsupported verb, ...) with an envelope.
        self._send(code, encode_failure(Bad_request(f"HTTP {code}: {message or self.responses.get(code, ('',))[0]}")),
                   close=True)

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] not in RPC_PATHS:
            length = self.headers.get("Content-Length", "")
            drain_body(self.connection, self.rfile, int(length) if length.isdigit() else 0)
            self._send(404, encode_failure(Bad_request(f"no XML-RPC endpoint at {self.path[:100]}")), close=True)
            return
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            # The body of a request without Content-Length cannot be delimited (no chunked support).
            self._send(411, encode_failure(Bad_request("Content-Length header is required")), close=True)
            return
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self._send(400, encode_failure(Bad_request("invalid Content-Length header")), close=True)
            return
        if length > self.server.max_request:
            # Refused without processing; the body is drained (bounded) so the client can read the answer, and the
            # connection is closed.
            drain_body(self.connection, self.rfile, length)
            self._send(413, encode_failure(Bad_request(
                f"request of {length} bytes exceeds the limit of {self.server.max_request} bytes")), close=True)
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client went away mid-request (or was too slow)
            return
        self.request_received()
        self._send(200, handle_request(self.server.dispatcher, body))

    def _not_post(self) -> None:
        self._send(405, encode_failure(Bad_request(f"HTTP method {self.command} not allowed; use POST")),
                   close=True, headers={"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_post


class XmlRpcServer(AddressMixin, ConnectionCapMixin, socketserver.ThreadingMixIn, HTTPServer):
    """A threaded HTTP server answering XML-RPC calls through a Dispatcher."""

    daemon_threads = True  # an in-flight call must not keep the process alive at exit

    def __init__(self, address: Any, family: int, dispatcher: Dispatcher, max_request: int,
                 request_timeout: float):
        self.address_family = family
        self.dispatcher = dispatcher
        self.max_request = max_request
        self.request_timeout = request_timeout
        self.request_deadline = DEFAULT_REQUEST_DEADLINE
        self.limit_connections(DEFAULT_MAX_CONNECTIONS)
        # SO_REUSEADDR would make bind() fail for AF_UNIX paths on some systems and means nothing there.
        self.allow_reuse_address = family != socket.AF_UNIX
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family != socket.AF_UNIX:
            super().server_bind()
            return
        # HTTPServer.server_bind wants (host, port) to compute server_name; a Unix socket has neither.
        socketserver.TCPServer.server_bind(self)
        self.remember_unix_socket()
        self.server_name, self.server_port = "localhost", 0


def make_xmlrpc_server(
    dispatcher: Dispatcher,
    *,
    unix_path: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    max_request: int = DEFAULT_MAX_REQUEST,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    request_deadline: float = DEFAULT_REQUEST_DEADLINE,
) -> XmlRpcServer:
    """A bound, listening XML-RPC server; call `serve_forever()` (e.g. in a thread), then `shutdown()` and
    `server_close()`.

    With `unix_path` it listens on that Unix socket; otherwise on TCP `host:port` (port 0 picks a free port,
    see `.address`). A non-loopback `host` raises ValueError unless `allow_remote` is True. At most
    `max_connections` are served at once, and each request must arrive within `request_deadline` seconds
    (`smapi.rpc.bounded`).
    """
    if unix_path is not None:
        remove_stale_socket(unix_path)
        server = XmlRpcServer(unix_path, socket.AF_UNIX, dispatcher, max_request, request_timeout)
    else:
        server = XmlRpcServer((host, port), tcp_family(host, allow_remote), dispatcher, max_request,
                              request_timeout)
    server.limit_connections(max_connections)
    server.request_deadline = request_deadline
    return server
