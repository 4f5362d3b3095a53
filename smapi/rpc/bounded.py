"""Bounded work per client for the threaded HTTP servers (XML-RPC, JSON-RPC, the Transfer service).

Two limits, because a socket timeout alone bounds neither:

* a connection cap: every connection costs a thread, so past `max_connections` a new one is answered 503 and
  closed at once instead of getting a thread;
* a request deadline: a client that sends one byte every ten seconds never trips a per-read timeout, yet holds
  its thread forever. From the moment a handler starts waiting for a request, the whole request (request line,
  headers and, for RPC, the body) must arrive within `request_deadline` seconds or the connection is shut down.
  The deadline stops when the handler calls `request_received()`, so a long-running call is never cut off.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Optional

#: connections served at once by one server; more are answered 503 and closed
DEFAULT_MAX_CONNECTIONS = 64
#: seconds a client has to deliver one whole request
DEFAULT_REQUEST_DEADLINE = 30.0

BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 38\r\n"
                 b"Connection: close\r\n\r\ntoo many connections; try again later\n")


class ConnectionCapMixin:
    """For `socketserver.ThreadingMixIn` servers; list it before ThreadingMixIn in the bases and call
    `limit_connections` in `__init__`."""

    _slots: Optional[threading.BoundedSemaphore] = None
    max_connections = DEFAULT_MAX_CONNECTIONS

    def limit_connections(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        slots = self._slots
        if slots is not None and not slots.acquire(blocking=False):
            # Answered from the accept loop: a fresh socket's send buffer takes these few bytes without blocking.
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(BUSY_RESPONSE)
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        try:
            super().process_request(request, client_address)  # type: ignore[misc]
        except BaseException:
            if slots is not None:
                slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            if self._slots is not None:
                self._slots.release()


class RequestDeadlineMixin:
    """For `BaseHTTPRequestHandler` subclasses (list it first in the bases): shuts a connection down when a
    request is not received within the server's `request_deadline` (default `DEFAULT_REQUEST_DEADLINE`)."""

    connection: socket.socket
    server: Any
    _timer: Optional[threading.Timer] = None

    def handle_one_request(self) -> None:
        deadline = float(getattr(self.server, "request_deadline", DEFAULT_REQUEST_DEADLINE))
        timer = threading.Timer(deadline, self._request_too_slow)
        timer.daemon = True
        self._timer = timer
        timer.start()
        try:
            super().handle_one_request()  # type: ignore[misc]
        finally:
            self.request_received()

    def request_received(self) -> None:
        """The request is in: from here on the call may take as long as it needs."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _request_too_slow(self) -> None:
        # Shutting the socket down wakes the handler's blocked read with end-of-file; it then closes normally.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
