"""Header-only scan of many images, for SR attach/scan: 1536 bytes at 0 plus the last 512 per file.

This path avoids the general parsers' object construction: it reads the few fields an SR needs straight from the
buffers, with the same checksum verification, so it stays within a small factor of the bare syscall cost.
"""

import os
import struct
from typing import Iterable, List, Optional, Union

from . import constants as C
from .info import ImageInfo, uuid_str
from .structs import decode_parent_name

_F = struct.Struct(">8sIIQI4sI4sQQIII16sBB")
_H = struct.Struct(">8sQQIIII16sI")
_TYPES = C.DISK_TYPE_NAMES


def _footer_ok(raw: bytes) -> bool:
    if raw[:8] != C.FOOTER_COOKIE or len(raw) < 512:
        return False
    csum = int.from_bytes(raw[64:68], "big")
    return (~(sum(raw[:512]) - sum(raw[64:68])) & 0xFFFFFFFF) == csum


def scan_file(path: str) -> ImageInfo:
    """Scan one file; never raises for a bad image (``error`` is set instead)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        return _bad(path, 0, f"open: {e.strerror}")
    try:
        head = os.pread(fd, C.DEFAULT_TABLE_OFFSET, 0)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, C.FOOTER_SIZE, size - C.FOOTER_SIZE) if size >= C.FOOTER_SIZE else b""
        if _footer_ok(tail):
            f = tail
        elif _footer_ok(head):  # primary torn by an allocation in flight: the backup is authoritative
            f = head
        else:
            return _bad(path, size, "footer: no valid footer (bad cookie or checksum)")
        (_, _, _, doff, _, app, ver, _, _, cur, _, dtype, _, uid, _, hidden) = _F.unpack_from(f)
        if dtype not in _TYPES:
            return _bad(path, size, f"footer.disk_type: {dtype}")
        info = ImageInfo(path, _TYPES[dtype], uuid_str(uid), None, None, cur, size, bool(hidden),
                         creator=app.decode("latin-1").rstrip("\0 ") + f" {ver >> 16}.{ver & 0xFFFF}")
        if dtype == C.DISK_FIXED:
            return info
        if doff + C.HEADER_SIZE > len(head):
            head = os.pread(fd, C.HEADER_SIZE, doff)
            doff = 0
        h = head[doff : doff + C.HEADER_SIZE]
        if len(h) < C.HEADER_SIZE or h[:8] != C.HEADER_COOKIE:
            return _bad(path, size, "header.cookie: missing dynamic header", info)
        if (~(sum(h) - sum(h[36:40])) & 0xFFFFFFFF) != int.from_bytes(h[36:40], "big"):
            return _bad(path, size, "header.checksum: mismatch", info)
        (_, _, _, _, entries, bsize, _, puuid, _) = _H.unpack_from(h)
        info.block_size = bsize
        info.max_virtual_size = entries * bsize
        if dtype == C.DISK_DIFF:
            info.parent_uuid = uuid_str(puuid)
            info.parent_name = decode_parent_name(h[64:576])
        return info
    except OSError as e:
        return _bad(path, 0, f"read: {e.strerror}")
    finally:
        os.close(fd)


def _bad(path: str, size: int, why: str, info: Optional[ImageInfo] = None) -> ImageInfo:
    if info is not None:
        info.error = why
        return info
    return ImageInfo(path, "unknown", None, None, None, 0, size, False, error=why)


def scan_headers(where: Union[str, "os.PathLike[str]", Iterable[str]], *, suffix: str = ".vhd") -> List[ImageInfo]:
    """Scan a directory (files ending in ``suffix``, sorted) or an explicit list of paths.

    Each result carries uuid, parent uuid, parent name (the header's), virtual and physical size, hidden flag;
    unreadable images come back with ``error`` set rather than failing the scan.
    """
    if isinstance(where, (str, os.PathLike)):
        d = os.fspath(where)
        with os.scandir(d) as it:
            paths = sorted(e.path for e in it if e.name.endswith(suffix) and e.is_file())
    else:
        paths = list(where)
    return [scan_file(p) for p in paths]
