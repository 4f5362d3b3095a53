"""Sector bitmaps (MSB first within each byte) as used per block and by the batmap.

Bit runs are found with ``str.find`` on the binary rendering of the bitmap: both steps run in C, which keeps the
per-block cost negligible even for 4096-sector blocks.
"""

from typing import List, Tuple


def bit_string(bitmap: "bytes | bytearray", nbits: int) -> str:
    """'0'/'1' string of the first ``nbits`` bits."""
    nbytes = (nbits + 7) // 8
    s = format(int.from_bytes(bitmap[:nbytes], "big"), f"0{nbytes * 8}b")
    return s[:nbits]


def runs(bits: str, start: int, end: int) -> List[Tuple[int, int, bool]]:
    """Maximal runs ``(a, b, is_set)`` covering bit indices ``[start, end)``."""
    out = []
    pos = start
    while pos < end:
        is_set = bits[pos] == "1"
        nxt = bits.find("0" if is_set else "1", pos, end)
        if nxt < 0:
            nxt = end
        out.append((pos, nxt, is_set))
        pos = nxt
    return out


def set_range(bitmap: bytearray, start: int, end: int) -> None:
    """Set bits ``[start, end)`` in place."""
    if start >= end:
        return
    first, last = start >> 3, (end - 1) >> 3
    if first == last:
        bitmap[first] |= (0xFF >> (start & 7)) & (0xFF << (7 - ((end - 1) & 7))) & 0xFF
        return
    bitmap[first] |= 0xFF >> (start & 7)
    if last > first + 1:
        bitmap[first + 1 : last] = b"\xff" * (last - first - 1)
    bitmap[last] |= (0xFF << (7 - ((end - 1) & 7))) & 0xFF


def all_set(bitmap: "bytes | bytearray", nbits: int) -> bool:
    full, rest = divmod(nbits, 8)
    if bitmap[:full] != b"\xff" * full:
        return False
    return not rest or (bitmap[full] >> (8 - rest)) == (1 << rest) - 1


def any_set(bitmap: bytes, nbits: int) -> bool:
    full, rest = divmod(nbits, 8)
    if bitmap[:full].count(0) != full:
        return True
    return bool(rest) and (bitmap[full] >> (8 - rest)) != 0


def test_bit(bitmap: bytes, i: int) -> bool:
    return bool(bitmap[i >> 3] & (0x80 >> (i & 7)))


def set_bit(bitmap: bytearray, i: int) -> None:
    bitmap[i >> 3] |= 0x80 >> (i & 7)


def clear_bit(bitmap: bytearray, i: int) -> None:
    bitmap[i >> 3] &= ~(0x80 >> (i & 7)) & 0xFF
