"""CHS geometry and the one's-complement checksum shared by footer, header and batmap."""

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


def checksum(buf: bytes, skip_at: int = -1, skip_len: int = 4) -> int:
    """``~sum(bytes)`` over ``buf`` with the 4-byte checksum field at ``skip_at`` counted as zero."""
    total = sum(buf)
    if skip_at >= 0:
        total -= sum(buf[skip_at : skip_at + skip_len])
    return ~total & 0xFFFFFFFF
