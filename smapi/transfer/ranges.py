"""HTTP byte ranges: `Range` on GET (RFC 9110) and `Content-Range` on PUT and BITS fragments.

Only single ranges are served; a multi-range request is answered with the whole body (200), which RFC 9110
allows. PUT with Content-Range follows the Transfer VM's rules (`mod_put.c`): `*` -> 501, malformed -> 400,
`0 <= start <= end < total` else 400, `total <= disk size` else 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)
# A decimal number this long is beyond any disk; refusing early keeps int() on hostile input cheap.
_MAX_DIGITS = 20


class RangeError(Exception):
    """`status` is the HTTP status the request gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_range(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """(start, end inclusive) for a satisfiable single range; None to send the whole body.

    Raises RangeError(416) when the range starts past the end.
    """
    if header is None:
        return None
    if "," in header:
        return None  # multi-range: send everything (allowed by RFC 9110)
    m = _RANGE.match(header)
    if m is None or (not m.group(1) and not m.group(2)) or len(header) > 2 * _MAX_DIGITS + 16:
        return None  # an unparsable Range header is ignored, per RFC 9110
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # invalid: ignore the header
        if start >= size:
            raise RangeError(416, f"range starts at {start}, past the end ({size} bytes)")
        return start, min(end, size - 1)
    suffix = int(last)
    if suffix == 0:
        raise RangeError(416, "a suffix range of 0 bytes is unsatisfiable")
    return max(0, size - suffix), size - 1


def parse_content_range(header: str) -> Tuple[int, int, int]:
    """(start, end inclusive, total) of `bytes a-b/t`; RangeError(501) for `*`, RangeError(400) otherwise."""
    if "*" in header:
        raise RangeError(501, "Content-Range with '*' is not supported")
    m = _CONTENT_RANGE.match(header)
    if m is None or any(len(g) > _MAX_DIGITS for g in m.groups()):
        raise RangeError(400, f"malformed Content-Range {header[:80]!r}")
    start, end, total = (int(g) for g in m.groups())
    if not 0 <= start <= end < total:
        raise RangeError(400, f"Content-Range {start}-{end}/{total} does not satisfy 0 <= start <= end < total")
    return start, end, total


@dataclass(frozen=True)
class PutRange:
    offset: int
    length: int


def put_range(content_range: Optional[str], content_length: int, size: int) -> PutRange:
    """Where a PUT body goes: the whole disk (Content-Length must equal the size) or the given window."""
    if content_range is None:
        if content_length != size:
            raise RangeError(416, f"a PUT without Content-Range must carry exactly the disk's {size} bytes, "
                                  f"not {content_length}")
        return PutRange(0, size)
    start, end, total = parse_content_range(content_range)
    if end - start + 1 != content_length:
        raise RangeError(400, f"Content-Range covers {end - start + 1} bytes but Content-Length is {content_length}")
    if total > size:
        raise RangeError(416, f"Content-Range total {total} is larger than the disk ({size} bytes)")
    return PutRange(start, content_length)
