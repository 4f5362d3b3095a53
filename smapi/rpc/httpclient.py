"""HTTP connections for the clients: TCP or a Unix socket, always with a timeout.

Neither `xmlrpc.client` nor jsonrpclib offers a timeout, and jsonrpclib's own Unix connection ignores one;
a storage call that never returns must not hang its caller forever, so both clients connect through here.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Optional

#: seconds a client waits for a connection or an answer unless told otherwise
DEFAULT_TIMEOUT = 60.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket; the Host header says `localhost`, as xapi's clients do."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class HttpEndpoint:
    """Where a server listens: a Unix socket path, or TCP host and port; plus the request path."""

    unix_path: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 80
    path: str = "/"
    timeout: float = DEFAULT_TIMEOUT

    def connection(self) -> http.client.HTTPConnection:
        if self.unix_path is not None:
            return UnixHTTPConnection(self.unix_path, self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def describe(self) -> str:
        return self.unix_path if self.unix_path is not None else f"{self.host}:{self.port}"
