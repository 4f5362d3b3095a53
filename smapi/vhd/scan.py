"""Header-only scan of many images, for SR attach/scan: 1536 bytes at 0 plus the last 512 per file.

This path avoids the general parsers' object construction: it reads the few fields an SR needs straight from the
buffers, with the same checksum verification, so it stays within a small factor of the bare syscall cost.
"""

import os
import struct
import zlib
from typing import Iterable, List, Optional, Union

from . import constants as C
from .info import ImageInfo, uuid_str
from .structs import decode_parent_name

_F = struct.Struct(">Q24xQ4xI4x16sxB")  # data_offset, current_size, disk_type, uuid, hidden (from byte 16)
_H = struct.Struct(">III16s")  # max_table_entries, block_size, checksum, parent uuid (from byte 28)
_TYPES = C.DISK_TYPE_NAMES


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_adler = zlib.adler32


def _footer_ok(f: bytes) -> bool:
    """Cookie and checksum of a 512-byte footer; the byte sum via two exact Adler-32 halves (see byte_sum)."""
    if len(f) < 512 or f[:8] != C.FOOTER_COOKIE:
        return False
    total = (_adler(f[:256]) & 0xFFFF) + (_adler(f[256:512]) & 0xFFFF) - 2 - f[64] - f[65] - f[66] - f[67]
    return (~total & 0xFFFFFFFF) == int.from_bytes(f[64:68], "big")


def _header_ok(h: bytes) -> bool:
    if h[:8] != C.HEADER_COOKIE:
        return False
    total = ((_adler(h[:256]) & 0xFFFF) + (_adler(h[256:512]) & 0xFFFF) + (_adler(h[512:768]) & 0xFFFF)
             + (_adler(h[768:1024]) & 0xFFFF) - 4 - h[36] - h[37] - h[38] - h[39])
    return (~total & 0xFFFFFFFF) == int.from_bytes(h[36:40], "big")


def scan_file(path: str) -> ImageInfo:
    """Scan one file; never raises for a bad image (``error`` is set instead)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        return _bad(path, 0, f"open: {e.strerror}")
    try:
        head = os.pread(fd, 1536, 0)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 512, size - 512) if size >= 512 else b""
    except OSError as e:
        return _bad(path, 0, f"read: {e.strerror}")
    finally:
        os.close(fd)
    if _footer_ok(tail):
        f = tail
    elif _footer_ok(head):  # primary torn by an allocation in flight: the backup is authoritative
        f = head
    else:
        return _bad(path, size, "footer: no valid footer (bad cookie or checksum)")
    doff, cur, dtype, uid, hidden = _F.unpack_from(f, 16)
    if dtype == C.DISK_FIXED:
        return ImageInfo(path, "fixed", uuid_str(uid), None, None, cur, size, hidden == 1)
    if dtype not in _TYPES:
        return _bad(path, size, f"footer.disk_type: {dtype}")
    info = ImageInfo(path, _TYPES[dtype], uuid_str(uid), None, None, cur, size, hidden == 1)
    if doff != 512:
        return _read_header_at(path, doff, info)
    return _apply_header(head[512:1536], info)


def _read_header_at(path: str, doff: int, info: ImageInfo) -> ImageInfo:
    try:
        fd = os.open(path, _OPEN_FLAGS)
        try:
            h = os.pread(fd, C.HEADER_SIZE, doff)
        finally:
            os.close(fd)
    except OSError as e:
        return _bad(path, info.physical_size, f"read: {e.strerror}", info)
    return _apply_header(h, info)


def _apply_header(h: bytes, info: ImageInfo) -> ImageInfo:
    if len(h) < C.HEADER_SIZE or not _header_ok(h):
        return _bad(info.name, info.physical_size, "header: missing or bad checksum", info)
    entries, bsize, _, puuid = _H.unpack_from(h, 28)
    info.block_size = bsize
    info.max_virtual_size = entries * bsize
    if info.disk_type == "differencing":
        info.parent_uuid = uuid_str(puuid)
        info.parent_name = decode_parent_name(h[64:576])
    return info


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
