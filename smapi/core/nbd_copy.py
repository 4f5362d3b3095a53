"""Copying disk contents between NBD exports: the engine behind Volume.revert and Data.copy.

Both ends are NBD servers: the local volume is served by the datapath's nbdkit (attached and activated for the
copy), the other end is a local export or a remote disk named by a URI. Accepted URI forms:

    nbd:unix:<socket>:exportname=<name>     (the classic `params_nbd`, qemu's form)
    nbd+unix:///<name>?socket=<socket>      (the standard NBD URI, libnbd's form)
    nbd://<host>[:<port>]/<name>            (TCP, port 10809 by default)
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

from smapi.datapath.nbdclient import NbdClient, NbdProtocolError
from smapi.interface.errors import Backend_error, Invalid_argument

#: bytes moved per NBD request: large enough to amortise round trips, small enough to keep progress fresh
CHUNK = 1 << 20
NBD_PORT = 10809

Address = Union[str, Tuple[str, int]]


def parse_nbd_uri(uri: str, what: str = "remote") -> Tuple[Address, str]:
    """(socket path or (host, port), export name) of an NBD URI."""
    if uri.startswith("nbd:unix:"):
        rest = uri[len("nbd:unix:"):]
        sock, sep, export = rest.partition(":exportname=")
        if sock and sep:
            return sock, export
    else:
        parts = urlsplit(uri)
        export = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        if parts.scheme == "nbd+unix":
            sockets = parse_qs(parts.query).get("socket")
            if sockets:
                return sockets[0], export
        elif parts.scheme == "nbd" and parts.hostname:
            return (parts.hostname, parts.port or NBD_PORT), export
    raise Invalid_argument(what, f"expected nbd:unix:<socket>:exportname=<name>, nbd+unix:///<name>?socket=<path> "
                                 f"or nbd://<host>[:<port>]/<name>, got {uri!r}")


def connect(uri: str, what: str = "remote") -> NbdClient:
    address, export = parse_nbd_uri(uri, what)
    try:
        return NbdClient(address, export)
    except (OSError, NbdProtocolError) as e:
        raise Backend_error("NBD_CONNECT_FAILED", [uri, f"{type(e).__name__}: {e}"]) from None


def byte_ranges(blocksize: int, ranges: Iterable[Tuple[int, int]], size: int) -> List[Tuple[int, int]]:
    """A blocklist's (start block, count) pairs as (offset, length) in bytes, clipped to the disk."""
    if blocksize <= 0:
        raise Invalid_argument("blocklist.blocksize", f"must be positive, got {blocksize}")
    out = []
    for start, count in ranges:
        if start < 0 or count < 0:
            raise Invalid_argument("blocklist.ranges", f"negative range ({start}, {count})")
        offset, end = start * blocksize, min((start + count) * blocksize, size)
        if offset < end:
            out.append((offset, end - offset))
    return out


def copy_ranges(src: NbdClient, dst: NbdClient, ranges: List[Tuple[int, int]], *,
                progress: Optional[Callable[[int, int], None]] = None,
                cancelled: Callable[[], bool] = lambda: False) -> int:
    """Copy `ranges` (offset, length) from `src` to `dst`, then flush `dst`; returns the bytes copied.

    `progress(done, total)` is called after every chunk; `cancelled()` is polled between chunks and stops the
    copy early (the bytes already written stay written).
    """
    total = sum(length for _, length in ranges)
    if dst.info.size < max((o + n for o, n in ranges), default=0):
        raise Invalid_argument("remote", f"the destination holds {dst.info.size} bytes; the copy needs "
                                         f"{max(o + n for o, n in ranges)}")
    done = 0
    for offset, length in ranges:
        end = offset + length
        while offset < end:
            if cancelled():
                return done
            n = min(CHUNK, end - offset)
            dst.pwrite(src.pread(n, offset), offset)
            offset += n
            done += n
            if progress is not None:
                progress(done, total)
    if dst.info.can_flush:
        dst.flush()
    return done


def zero_tail(dst: NbdClient, start: int) -> None:
    """Write zeros from `start` to the end of `dst` (a reverted volume larger than its snapshot)."""
    zeros = bytes(CHUNK)
    offset = start
    while offset < dst.info.size:
        n = min(CHUNK, dst.info.size - offset)
        dst.pwrite(zeros[:n], offset)
        offset += n
