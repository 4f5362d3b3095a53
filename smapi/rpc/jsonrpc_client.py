"""Client side of the JSON-RPC transport, through jsonrpclib's ServerProxy.

Named arguments go as `params: [{...}]`, the shape xapi sends. jsonrpclib reports errors as exceptions whose
shape depends on the error code (see `smapi.rpc.jsonrpc`); `_to_smapi_error` turns each back into the typed
SmapiError. Transport failures (refused connection, timeout) stay OSErrors: they say nothing about the call.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

import jsonrpclib
from jsonrpclib.jsonrpc import AppError, ProtocolError, Transport, TransportError

from smapi.interface.errors import (
    Bad_request,
    Internal_error,
    Invalid_argument,
    SmapiError,
    Unknown_method,
)
from smapi.interface.model import Method
from smapi.rpc.httpclient import HttpEndpoint
from smapi.rpc.jsonrpc import json_config


class _EndpointTransport(Transport):
    """jsonrpclib's transport, connecting through our endpoint (timeouts, Unix sockets)."""

    #: (host, connection) of the connection kept open (jsonrpclib's own attribute)
    _connection: Any

    def __init__(self, endpoint: HttpEndpoint):
        super().__init__(json_config())
        self.endpoint = endpoint

    def make_connection(self, host: Any) -> Any:
        if self._connection and self._connection[0] == host:
            return self._connection[1]
        conn = self.endpoint.connection()
        self._connection = host, conn
        return conn


class JsonRpcTransport:
    """Sends calls to a JSON-RPC server; one ServerProxy per thread, since jsonrpclib's is not thread-safe."""

    def __init__(self, endpoint: HttpEndpoint):
        self.endpoint = endpoint
        self._local = threading.local()
        self._proxies: list = []

    def _uri(self) -> str:
        if self.endpoint.unix_path is not None:
            return f"unix+http://localhost{self.endpoint.path}"  # the transport supplies the socket
        return f"http://{self.endpoint.host}:{self.endpoint.port}{self.endpoint.path}"

    def _proxy(self) -> jsonrpclib.ServerProxy:
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = jsonrpclib.ServerProxy(self._uri(), transport=_EndpointTransport(self.endpoint),
                                           config=json_config())
            self._local.proxy = proxy
            self._proxies.append(proxy)
        return proxy

    def call(self, wire_name: str, args: Dict[str, Any], method: Method) -> Any:
        try:
            return getattr(self._proxy(), wire_name)(args)
        except ProtocolError as e:
            raise _to_smapi_error(e) from None
        except (ValueError, TypeError) as e:  # an unparsable or ill-formed response
            raise Internal_error(f"bad JSON-RPC response from {self.endpoint.describe()}: {e}") from None

    def close(self) -> None:
        for proxy in self._proxies:
            proxy("close")()
        self._proxies.clear()


_PREDEFINED: Dict[int, Any] = {
    -32700: lambda m: Bad_request(m),
    -32600: lambda m: Bad_request(m),
    -32601: lambda m: Unknown_method(m),
    -32602: lambda m: Invalid_argument("params", m),
}


def _to_smapi_error(e: ProtocolError) -> SmapiError:
    if isinstance(e, AppError):
        code, message, data = e.args[0]
        return SmapiError.from_variant(data if data is not None else message)
    if isinstance(e, TransportError):
        if 400 <= int(e.errcode) < 500:
            return Bad_request(f"HTTP {e.errcode} {e.errmsg}")
        return Internal_error(f"HTTP {e.errcode} {e.errmsg}")
    detail: Any = e.args[0] if e.args else None
    if _is_code_message(detail):
        code, message = detail
        return _PREDEFINED.get(code, lambda m: Internal_error(m))(str(message))
    # An rpclib-style server (xapi) puts the bare error variant in "error".
    return SmapiError.from_variant(detail)


def _is_code_message(detail: Any) -> bool:
    return isinstance(detail, tuple) and len(detail) == 2 and isinstance(detail[0], int)


__all__: Tuple[str, ...] = ("JsonRpcTransport",)
