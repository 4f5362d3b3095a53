"""The block allocation table as stored: big-endian u32 sector numbers, 0xFFFFFFFF for an unallocated block."""

import sys
from array import array

from . import constants as C


def bat_from_bytes(raw: bytes) -> "array[int]":
    bat = array("I")
    if bat.itemsize != 4:  # pragma: no cover - exotic platforms
        bat = array("L")
    bat.frombytes(raw)
    if sys.byteorder == "little":
        bat.byteswap()
    return bat


def bat_to_bytes(entries: "array[int]") -> bytes:
    out = array(entries.typecode, entries)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


def pack_bat(bat: "array[int]") -> bytes:
    """The BAT as on disk, padded to a sector with 0xFF."""
    raw = bat_to_bytes(bat)
    return raw + b"\xff" * (C.pad512(len(raw)) - len(raw))


def new_bat(entries: int) -> "array[int]":
    """A BAT of ``entries`` unallocated blocks."""
    return bat_from_bytes(b"\xff" * (entries * 4))
