"""Where a server listens: the loopback rule, Unix-socket housekeeping and the server's own address.

Both network transports (XML-RPC and JSON-RPC) share these rules so they cannot drift apart:

* TCP binds 127.0.0.1 unless the caller explicitly allows a remote address. The storage interface has no
  authentication (xapi reaches it over a root-only Unix socket), so exposing it beyond the host must be a
  deliberate decision.
* A Unix socket path left behind by a crashed server is removed before binding, but a path where a live
  server answers is never stolen.
* Closing a server removes the socket file it created, and only that one.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import stat
from typing import Any, Optional, Tuple, Union

#: requests larger than this are refused with HTTP 413 before the body is read
DEFAULT_MAX_REQUEST = 16 * 1024 * 1024

#: how long a connection may sit idle (or trickle a request) before the server drops it, in seconds
DEFAULT_REQUEST_TIMEOUT = 60.0

Address = Union[str, Tuple[str, int]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A host name other than localhost could resolve anywhere: treat it as remote.
        return False


def tcp_family(host: str, allow_remote: bool) -> socket.AddressFamily:
    """The address family to bind `host` with; refuses non-loopback hosts unless `allow_remote`."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host!r}: the storage interface is unauthenticated; bind a loopback "
            "address or pass allow_remote=True (--allow-remote) to expose it deliberately"
        )
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def remove_stale_socket(path: str) -> None:
    """Remove `path` if it is a Unix socket nobody listens on; refuse if a server answers there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # left behind by a server that died
        return
    except OSError:
        return  # let bind report the real problem
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"a server is already listening on {path}")


class AddressMixin:
    """For `socketserver` servers: the bound address, and removal of our own socket file on close.

    Must come before the socketserver class in the bases so that `server_close` runs first.
    """

    socket: socket.socket
    server_address: Any
    address_family: int
    _unix_inode: Optional[Tuple[int, int]] = None

    @property
    def address(self) -> Address:
        """The Unix socket path, or `(host, port)` with the real port when port 0 was asked for."""
        if self.address_family == socket.AF_UNIX:
            return str(self.server_address)
        host, port = self.socket.getsockname()[:2]
        return host, port

    def remember_unix_socket(self) -> None:
        """Call after binding: the inode identifies our socket file even if another server replaces it."""
        st = os.stat(self.server_address)
        self._unix_inode = (st.st_dev, st.st_ino)

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        if self._unix_inode is None:
            return
        path = self.server_address
        try:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) == self._unix_inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        self._unix_inode = None


class QuietHandlerMixin:
    """Request-handler logging for both transports: debug-level, and Unix-socket peers have no address."""

    log_name = "smapi.rpc"

    def address_string(self) -> str:
        peer = getattr(self, "client_address", None)
        return peer[0] if isinstance(peer, tuple) else "unix"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        import logging

        logging.getLogger(self.log_name).debug("%s %s", self.address_string(), format % args)


#: how much of a refused body a server reads and discards before answering, so that a client still writing its
#: request gets the typed refusal rather than EPIPE; larger bodies are cut off
DRAIN_LIMIT = 4 << 20
#: how long draining waits for more of the body: a client that announced a body it never sends must not hold it
DRAIN_IDLE_SECONDS = 0.2


def drain_body(connection: Any, rfile: Any, length: int) -> None:
    remaining = min(length, DRAIN_LIMIT)
    previous = connection.gettimeout()
    connection.settimeout(DRAIN_IDLE_SECONDS)
    try:
        while remaining > 0:
            chunk = rfile.read1(min(remaining, 65536)) if hasattr(rfile, "read1") else rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)
    except OSError:  # idle, or the client gave up: answer with what we have
        return
    finally:
        with contextlib.suppress(OSError):
            connection.settimeout(previous)
