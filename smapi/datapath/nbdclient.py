"""A minimal NBD client (fixed newstyle handshake, simple replies) for the datapath's own needs.

The datapath has to know that a server answers (readiness) and to flush it on deactivate, from the project's
virtualenv, where libnbd's Python binding (a Debian package for the system Python) is not importable. This speaks
just enough of the protocol for that: NBD_OPT_GO with the export info, then READ / WRITE / FLUSH / DISC.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Optional, Tuple, Union

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
INFO_EXPORT = 0

TFLAG_READ_ONLY = 1 << 1
TFLAG_SEND_FLUSH = 1 << 2

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3


class NbdProtocolError(Exception):
    """The server refused an option or a command, or spoke something else than NBD."""


@dataclass
class ExportInfo:
    size: int
    flags: int

    @property
    def readonly(self) -> bool:
        return bool(self.flags & TFLAG_READ_ONLY)

    @property
    def can_flush(self) -> bool:
        return bool(self.flags & TFLAG_SEND_FLUSH)


class NbdClient:
    """One connection to an NBD server (Unix socket or TCP); use as a context manager (sends DISC on exit)."""

    def __init__(self, socket_path: Union[str, Tuple[str, int]], export: str = "", *,
                 timeout: float = 30.0) -> None:
        # A (host, port) pair is a TCP server (a remote `nbd://` disk); a string is a Unix socket path.
        family = socket.AF_INET6 if isinstance(socket_path, tuple) and ":" in socket_path[0] else (
            socket.AF_INET if isinstance(socket_path, tuple) else socket.AF_UNIX)
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._handle = 0
        try:
            self._sock.connect(socket_path)
            self.info = self._handshake(export)
        except BaseException:
            self._sock.close()
            raise

    # -------------------------------------------------------------------------------------------- handshake
    def _handshake(self, export: str) -> ExportInfo:
        magic, opt_magic, hflags = struct.unpack(">QQH", self._recv(18))
        if magic != NBDMAGIC or opt_magic != IHAVEOPT or not hflags & FLAG_FIXED_NEWSTYLE:
            raise NbdProtocolError("not a fixed-newstyle NBD server")
        self._sock.sendall(struct.pack(">I", FLAG_FIXED_NEWSTYLE | (hflags & FLAG_NO_ZEROES)))
        name = export.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self._sock.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
        info: Optional[ExportInfo] = None
        while True:
            rmagic, _opt, rtype, length = struct.unpack(">QIII", self._recv(20))
            payload = self._recv(length) if length else b""
            if rmagic != REPLY_MAGIC:
                raise NbdProtocolError("bad option reply magic")
            if rtype & 0x80000000:
                raise NbdProtocolError(f"export {export!r} refused (reply {rtype:#x}: {payload[:200]!r})")
            if rtype == REP_INFO and len(payload) >= 12 and struct.unpack(">H", payload[:2])[0] == INFO_EXPORT:
                size, tflags = struct.unpack(">QH", payload[2:12])
                info = ExportInfo(size, tflags)
            elif rtype == REP_ACK:
                if info is None:
                    raise NbdProtocolError("server acknowledged NBD_OPT_GO without export info")
                return info

    # -------------------------------------------------------------------------------------------- transmission
    def _request(self, cmd: int, offset: int = 0, length: int = 0, data: bytes = b"") -> bytes:
        self._handle += 1
        self._sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, self._handle, offset, length) + data)
        if cmd == CMD_DISC:
            return b""
        magic, error, handle = struct.unpack(">IIQ", self._recv(16))
        if magic != SIMPLE_REPLY_MAGIC or handle != self._handle:
            raise NbdProtocolError("unexpected reply")
        if error:
            raise NbdProtocolError(f"command {cmd} failed with NBD error {error}")
        return self._recv(length) if cmd == CMD_READ else b""

    def pread(self, length: int, offset: int) -> bytes:
        return self._request(CMD_READ, offset, length)

    def pwrite(self, data: bytes, offset: int) -> None:
        self._request(CMD_WRITE, offset, len(data), data)

    def flush(self) -> None:
        self._request(CMD_FLUSH)

    def close(self) -> None:
        try:
            self._request(CMD_DISC)
        except OSError:
            pass  # the server may already be gone; nothing left to tell it
        finally:
            self._sock.close()

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise NbdProtocolError("connection closed by the server")
            buf += chunk
        return bytes(buf)

    def __enter__(self) -> NbdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
