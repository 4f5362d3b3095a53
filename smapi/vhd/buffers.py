"""Small I/O helpers of the image code: bounded exact reads, shared zero buffers, vectored writes."""

from typing import List, Union

from . import constants as C
from .backing import Backing
from .errors import CorruptImage

Buffer = Union[bytes, bytearray, memoryview]

_ZEROS = bytes(C.MAX_BLOCK_SIZE)
_ZEROS_VIEW = memoryview(_ZEROS)


def read_exact(backing: Backing, n: int, offset: int, name: str, what: str, limit: int) -> bytes:
    """Read exactly ``n`` bytes, refusing up front anything past ``limit`` (the file size): a forged offset never
    turns into a read outside the image."""
    if offset < 0 or n < 0 or offset + n > limit:
        raise CorruptImage(f"{n} bytes at {offset} lie outside the file ({limit} bytes)", field=what, image=name)
    data = backing.pread(n, offset)
    if len(data) != n:
        raise CorruptImage(f"{n} bytes at {offset} needed, file ends first", field=what, image=name)
    return data


def zeros(n: int) -> memoryview:
    """A shared read-only view of ``n`` zero bytes (``n`` at most one block)."""
    return _ZEROS_VIEW[:n]


def zero_fill(view: memoryview) -> None:
    pos, n = 0, len(view)
    while pos < n:
        k = min(n - pos, len(_ZEROS))
        view[pos : pos + k] = _ZEROS_VIEW[:k]
        pos += k


def pwritev(backing: Backing, bufs: List[Buffer], offset: int) -> None:
    backing.pwritev(bufs, offset)  # every Backing has it (a generic default writes the buffers one by one)
