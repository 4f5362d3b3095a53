"""Imports that leave the VDI reading exactly like the input, into a fresh VDI or one that already holds data.

Streams leave zeros out to stay small: xapi's tar format omits all-zero chunks, the legacy chunk reader and the raw
reader skip zero runs, a VHD carries zero sectors like any other. Leaving a zero region unwritten is only right
where the VDI already reads zero; where it holds data, those bytes would survive the import. `ExactImport` sits
between a decoder and an upload and decides that from the VDI's allocation map (VHD BATs: metadata only; a raw VDI
is read once), taken lazily, so a stream without zero regions never pays for it.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

from smapi.transfer.disk import BLOCK, Upload

#: coverage is tracked in the tar format's chunk unit
UNIT = 1 << 20


class ExactImport:
    """`write`/`size` like an Upload; `fill_gaps` zeroes what a whole-disk stream left out but the VDI still holds."""

    def __init__(self, up: Upload, unit: int = UNIT) -> None:
        self.up = up
        self.size = up.size
        self.unit = unit
        self._alloc: Optional[bytearray] = None
        self._covered = bytearray(-(-self.size // unit))
        # Units written in part (a VHD's marked sectors, runs at unaligned offsets): the byte ranges written.
        self._partial: Dict[int, List[Tuple[int, int]]] = {}
        self._zero = bytes(unit)
        # Blocks this import wrote: a later zero write there is not a no-op (streams with overlapping records).
        self._written = bytearray(-(-self.size // BLOCK))

    def _holds_data(self, offset: int, length: int) -> bool:
        if self._alloc is None:
            # The map describes the VDI as it was: an upload writes into its scratch, not into these images.
            self._alloc = self.up.disk.allocation(BLOCK)
        first, last = offset // BLOCK, (offset + length - 1) // BLOCK
        return any(self._alloc[first:last + 1]) or any(self._written[first:last + 1])

    def _zeros(self, n: int) -> bytes:
        if n > len(self._zero):
            self._zero = bytes(n)
        return self._zero[:n]

    def write(self, offset: int, data: bytes) -> None:
        if not data:
            return
        if data != self._zeros(len(data)) or self._holds_data(offset, len(data)):
            self.up.write(offset, data)
            first, last = offset // BLOCK, (offset + len(data) - 1) // BLOCK
            self._written[first:last + 1] = b"\x01" * (last - first + 1)
        self._cover(offset, offset + len(data))

    def _cover(self, start: int, end: int) -> None:
        for u in range(start // self.unit, -(-end // self.unit)):
            u_start, u_end = u * self.unit, min(self.size, (u + 1) * self.unit)
            if self._covered[u]:
                continue
            if start <= u_start and end >= u_end:
                self._covered[u] = 1
                self._partial.pop(u, None)
            else:
                self._partial.setdefault(u, []).append((max(start, u_start), min(end, u_end)))

    def _gaps(self, u: int) -> Iterator[Tuple[int, int]]:
        pos, u_end = u * self.unit, min(self.size, (u + 1) * self.unit)
        for start, end in sorted(self._partial.get(u, ())):
            if start > pos:
                yield pos, start
            pos = max(pos, end)
        if pos < u_end:
            yield pos, u_end

    def fill_gaps(self) -> int:
        """Zero every range no write covered where the VDI holds data; returns the bytes written."""
        written = 0
        for u, done in enumerate(self._covered):
            if done:
                continue
            for start, end in self._gaps(u):
                if self._holds_data(start, end - start):
                    self.up.write(start, self._zeros(end - start))
                    written += end - start
        return written
