"""CHS geometry and the one's-complement checksum shared by footer, header and batmap."""

import zlib
from typing import Tuple


def chs(size: int) -> Tuple[int, int, int]:
    """Cylinders/heads/sectors-per-track for ``size`` bytes, the MS spec algorithm (blktap and qemu agree).

    The CHS capacity rounds *down*; blktap stores the exact size next to it, which is what we do too.
    """
    secs = max(1, -(-size // 512))
    secs = min(secs, 65535 * 16 * 255)
    if secs >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = secs // spt
    else:
        spt = 17
        cth = secs // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = secs // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = secs // spt
    return cth // heads, heads, spt


def geometry_u32(size: int) -> int:
    cyl, heads, spt = chs(size)
    return (cyl << 16) | (heads << 8) | spt


def geometry_capacity(geometry: int) -> int:
    return (geometry >> 16) * ((geometry >> 8) & 0xFF) * (geometry & 0xFF) * 512


def byte_sum(buf: "bytes | bytearray | memoryview") -> int:
    """Exact sum of all bytes, computed in C.

    Adler-32's low half is 1 + (sum of bytes) mod 65521; for a 256-byte chunk the sum is at most 65280, so the
    modulo never applies and the value is exact. ``sum(bytes)`` boxes every byte and costs 5x more, which shows
    in header scans of thousands of images.
    """
    mv = memoryview(buf).cast("B")
    n = len(mv)
    total = 0
    for i in range(0, n - n % 256, 256):
        total += (zlib.adler32(mv[i : i + 256]) & 0xFFFF) - 1
    if n % 256:
        total += (zlib.adler32(mv[n - n % 256 :]) & 0xFFFF) - 1
    return total


def checksum(buf: "bytes | bytearray | memoryview", skip_at: int = -1, skip_len: int = 4) -> int:
    """``~sum(bytes)`` over ``buf`` with the 4-byte checksum field at ``skip_at`` counted as zero."""
    total = byte_sum(buf)
    if skip_at >= 0:
        total -= sum(bytes(buf[skip_at : skip_at + skip_len]))
    return ~total & 0xFFFFFFFF
