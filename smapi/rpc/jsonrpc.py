"""The JSON-RPC 2.0 transport, built on jsonrpclib-pelix, over a Unix socket or loopback TCP.

jsonrpclib facts this module relies on (1.2.0):

* a `Fault` must be *returned*, not raised; any raised exception becomes an opaque -32603;
* its client drops `data` for codes in [-32700, -32000], so a SMAPI error travels with an application code
  outside that range (the error's classic numeric code, e.g. 38 for Unimplemented), `message` = the wire
  name and `data` = the rpclib error variant (`["Unimplemented", "VDI.snapshot"]`);
* `SimpleJSONRPCServer` is single-threaded; `ThreadingMixIn` in front of it gives a thread per connection;
* the request handler's `_dispatch(method, params)` receives every call, so the API's dotted names
  (`SR.attach`) need no registration and no attribute walking.

`use_jsonclass=False` on both ends: the storage interface is plain data, and class hints in the payload must
never make either side construct objects.
"""

from __future__ import annotations

import logging
import socket
import socketserver
from typing import Any, Optional

import jsonrpclib
from jsonrpclib.config import Config
from jsonrpclib.SimpleJSONRPCServer import SimpleJSONRPCRequestHandler, SimpleJSONRPCServer

from smapi.core.dispatcher import Dispatcher
from smapi.interface.errors import Internal_error, SmapiError
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

log = logging.getLogger("smapi.jsonrpc")

#: JSON-RPC "Invalid Request"; also what jsonrpclib sends for HTTP-level refusals (411, 413)
INVALID_REQUEST = -32600
#: JSON-RPC "Parse error": the body is not JSON (or not UTF-8, or nested too deeply to parse)
PARSE_ERROR = -32700


def json_config() -> Config:
    """The jsonrpclib configuration both ends use."""
    return Config(use_jsonclass=False)


def error_fault(err: SmapiError, config: Optional[Config] = None) -> jsonrpclib.Fault:
    """The JSON-RPC error object for a SMAPI error (see the module docstring for why this code)."""
    return jsonrpclib.Fault(int(err.classic_code), err.wire_name, config=config or json_config(),
                            data=err.to_variant())


class _Handler(RequestDeadlineMixin, QuietHandlerMixin, SimpleJSONRPCRequestHandler):
    log_name = "smapi.jsonrpc"

    server: JsonRpcServer

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler applies it to the socket
        self.max_request_size = self.server.max_request  # jsonrpclib answers 413 above this
        super().setup()

    def decode_request_content(self, data: bytes) -> Optional[bytes]:
        # jsonrpclib calls this once the whole body is read, and would answer HTTP 500 / -32603 for a body that is
        # not UTF-8: a parse error is the client's, so it gets -32700 saying what is wrong.
        self.request_received()
        decoded = super().decode_request_content(data)
        if decoded is None:
            return None
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError as e:
            self._answer(200, PARSE_ERROR, f"parse error: the request body is not valid UTF-8 ({e.reason} at byte "
                                           f"{e.start})")
            return None
        return decoded

    def _dispatch(self, method: str, params: Any) -> Any:
        # jsonrpclib calls this for every request; returning a Fault is its way of sending an error.
        config = self.server.json_config
        try:
            return self.server.dispatcher.call(method, params)
        except SmapiError as e:
            return error_fault(e, config)
        except Exception as e:  # a bug in the transport itself: still answer with a typed error
            log.exception("JSON-RPC call %s failed", str(method)[:100])
            return error_fault(Internal_error(f"{type(e).__name__}: {e}"), config)

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not self.is_rpc_path_valid():
            # jsonrpclib would answer 404 without reading the body; drain it so the client sees the answer.
            drain_body(self.connection, self.rfile, int(length) if length.isdigit() else 0)
            self.report_404()
            return
        if length.isdigit() and int(length) > self.max_request_size > 0:
            # jsonrpclib would refuse without reading; drain (bounded) so the client can read the 413.
            drain_body(self.connection, self.rfile, int(length))
            self._refuse(413, f"request of {length} bytes exceeds the limit of {self.max_request_size} bytes")
            return
        super().do_POST()

    def _refuse(self, status: int, message: str, headers: Optional[dict] = None) -> None:
        self._answer(status, INVALID_REQUEST, message, headers)

    def _answer(self, status: int, code: int, message: str, headers: Optional[dict] = None) -> None:
        config = self.server.json_config
        body = jsonrpclib.Fault(code, message, config=config).response().encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", config.content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        # Replaces http.server's HTML error page (bad request line, unsupported verb, ...) with a JSON error.
        self._refuse(code, f"HTTP {code}: {message or self.responses.get(code, ('',))[0]}")

    def report_404(self) -> None:
        self._refuse(404, f"no JSON-RPC endpoint at {self.path[:100]}")

    def _not_post(self) -> None:
        self._refuse(405, f"HTTP method {self.command} not allowed; use POST", {"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_post


class JsonRpcServer(AddressMixin, ConnectionCapMixin, socketserver.ThreadingMixIn, SimpleJSONRPCServer):
    """A threaded jsonrpclib server answering JSON-RPC calls through a Dispatcher."""

    daemon_threads = True  # an in-flight call must not keep the process alive at exit

    def __init__(self, address: Any, family: int, dispatcher: Dispatcher, max_request: int,
                 request_timeout: float):
        self.dispatcher = dispatcher
        self.max_request = max_request
        self.request_timeout = request_timeout
        self.request_deadline = DEFAULT_REQUEST_DEADLINE
        self.limit_connections(DEFAULT_MAX_CONNECTIONS)
        super().__init__(address, requestHandler=_Handler, logRequests=False, address_family=family,
                         config=json_config())
        if family == socket.AF_UNIX:
            self.remember_unix_socket()

    def _marshaled_single_dispatch(self, request: dict, dispatch_method: Any = None) -> Any:
        """JSON-RPC 1.0 calls (no "jsonrpc" member) are answered as rpclib answers them.

        xapi's rpclib client sends version 1.0 (`{"method", "params": [{...}], "id"}`) and reads a failure as
        `{"result": null, "error": <error variant>, "id"}`; jsonrpclib would put a `{code, message, data}`
        object there, which rpclib cannot decode into a storage error. 2.0 calls keep jsonrpclib's format.
        """
        if "jsonrpc" in request or request.get("id") is None or dispatch_method is None:
            return super()._marshaled_single_dispatch(request, dispatch_method)
        outcome = dispatch_method(request["method"], request["params"])
        if isinstance(outcome, jsonrpclib.Fault):
            error = outcome.data if outcome.data is not None else outcome.error()
            return {"result": None, "error": error, "id": request["id"]}
        return {"result": outcome, "error": None, "id": request["id"]}


def make_jsonrpc_server(
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
) -> JsonRpcServer:
    """A bound, listening JSON-RPC server; same arguments and life cycle as `make_xmlrpc_server`."""
    if unix_path is not None:
        remove_stale_socket(unix_path)
        server = JsonRpcServer(unix_path, socket.AF_UNIX, dispatcher, max_request, request_timeout)
    else:
        server = JsonRpcServer((host, port), tcp_family(host, allow_remote), dispatcher, max_request,
                               request_timeout)
    server.limit_connections(max_connections)
    server.request_deadline = request_deadline
    return server
