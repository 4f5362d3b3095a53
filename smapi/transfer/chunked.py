"""vhd-tool's "chunked" import protocol (`/import_raw_vdi?...&chunked`, or `Cookie: chunked=true`).

Not HTTP chunked encoding: the body is a sequence of records, each a 12-byte little-endian header
`{offset: uint64, length: uint32}` (a byte offset on the disk and the number of data bytes following it), then
`length` bytes of data. The header `{0, 0}` ends the stream. Records may come in any order and skip holes, so a
sparse disk uploads in one PUT (ocaml/vhd-tool/src/chunked.ml).

The body is read record by record, never past the end marker: a client without Content-Length (vhd-tool's own)
waits for the answer on an open connection after the marker, so reading ahead would block.
"""

from __future__ import annotations

import struct
from typing import Callable, Optional

HEADER = struct.Struct("<QI")
PIECE = 1 << 20

Reader = Callable[[int], bytes]
Writer = Callable[[int, bytes], None]


class ChunkedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _exact(read: Reader, n: int, what: str) -> bytes:
    out = b""
    while len(out) < n:
        data = read(n - len(out))
        if not data:
            raise ConnectionError(f"the body ended inside {what}")
        out += data
    return out


def receive(read: Reader, write: Writer, disk_size: int, length: Optional[int] = None) -> int:
    """Apply a chunked stream; `length` is the Content-Length when the client sent one. Returns the data bytes.

    `read(n)` returns at most n bytes and b"" at the end of the body. Out-of-range records are refused (416)
    before their data is written; a stream without its end marker or with bytes after it is refused (400).
    """
    left = length

    def take(n: int) -> bytes:
        nonlocal left
        if left is not None:
            n = min(n, left)
            if n == 0:  # the declared body is all there, but the stream wants more
                raise ChunkedError(400, f"the chunked stream goes on past Content-Length ({length} bytes)"
                                        f" or lacks its end marker")
        data = read(n)
        if left is not None:
            left -= len(data)
        return data

    total = 0
    records = 0
    while True:
        raw = _exact(take, HEADER.size, f"the header of record {records}")
        offset, n = HEADER.unpack(raw)
        if offset == 0 and n == 0:
            break
        if offset + n > disk_size:
            raise ChunkedError(416, f"record {records} ({n} bytes at {offset}) goes past the end of the "
                                    f"{disk_size}-byte disk")
        pos = offset
        while pos < offset + n:
            data = _exact(take, min(PIECE, offset + n - pos), f"the data of record {records}")
            write(pos, data)
            pos += len(data)
        total += n
        records += 1
    if left:
        raise ChunkedError(400, f"{left} bytes follow the chunked stream's end marker")
    return total
