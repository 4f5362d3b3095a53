"""The SR's metadata documents in the management LV (``MGT``), replaced atomically.

The LV holds two slots. Each slot is a 512-byte header followed by a zlib-compressed JSON payload holding every
document (the SR document with its VDI records, and the intent-journal entries):

    magic "SMAPIMGT" | version u32 | sequence u64 | payload length u64 | sha256(payload) | crc32(header so far)

A new version goes to the slot the current one does not occupy (``sequence % 2``), in one write followed by a
flush. Readers take the valid slot with the highest sequence, so a write torn by a crash leaves the previous
version in force: readers see the old documents or the new ones, never a mix. One update at a time is enforced
by the caller's lock (read-modify-write of the whole set).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any, Callable, Dict, Optional, Tuple

from smapi.vhd import Backing

MGT_LV = "MGT"
SLOT_SIZE = 4 << 20
MGT_SIZE = 2 * SLOT_SIZE
MAGIC = b"SMAPIMGT"
VERSION = 1
_HEADER = struct.Struct(">8sIQQ32s")
HEADER_SIZE = 512

Documents = Dict[str, Any]


class MetadataFull(Exception):
    """The documents no longer fit in a slot."""


class MetadataCorrupt(Exception):
    """Neither slot holds a valid version."""


def encode_slot(seq: int, documents: Documents) -> bytes:
    payload = zlib.compress(json.dumps(documents, sort_keys=True, separators=(",", ":")).encode(), 6)
    if HEADER_SIZE + len(payload) > SLOT_SIZE:
        raise MetadataFull(f"SR metadata needs {len(payload)} bytes; a slot holds {SLOT_SIZE - HEADER_SIZE}")
    head = _HEADER.pack(MAGIC, VERSION, seq, len(payload), hashlib.sha256(payload).digest())
    head += struct.pack(">I", zlib.crc32(head))
    return head.ljust(HEADER_SIZE, b"\0") + payload


def decode_slot(read: Callable[[int, int], bytes], base: int) -> Optional[Tuple[int, Documents]]:
    """(sequence, documents) of the slot at ``base``, or None when it holds no valid version."""
    head = read(HEADER_SIZE, base)
    if len(head) < HEADER_SIZE or head[:8] != MAGIC:
        return None
    fixed = head[: _HEADER.size]
    (crc,) = struct.unpack_from(">I", head, _HEADER.size)
    if zlib.crc32(fixed) != crc:
        return None
    _magic, version, seq, length, digest = _HEADER.unpack(fixed)
    if version != VERSION or length > SLOT_SIZE - HEADER_SIZE:
        return None
    payload = read(length, base + HEADER_SIZE)
    if len(payload) != length or hashlib.sha256(payload).digest() != digest:
        return None
    return seq, json.loads(zlib.decompress(payload))


class MgtStore:
    """Documents in an MGT volume reached through ``open_volume(writable) -> Backing``."""

    def __init__(self, open_volume: Callable[[bool], Backing]) -> None:
        self._open = open_volume

    @staticmethod
    def _latest(backing: Backing) -> Tuple[int, Documents]:
        best: Optional[Tuple[int, Documents]] = None
        for slot in (0, 1):
            found = decode_slot(backing.pread, slot * SLOT_SIZE)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return best if best is not None else (0, {})

    def format(self) -> None:
        """A fresh, empty store: version 1 in slot 1, slot 0 invalidated (the LV's extents may hold old bytes)."""
        with self._open(True) as b:
            b.pwrite(bytes(HEADER_SIZE), 0)
            b.pwrite(encode_slot(1, {}), SLOT_SIZE)
            b.flush()

    def load(self) -> Documents:
        with self._open(False) as b:
            return self._latest(b)[1]

    def update(self, change: Callable[[Documents], None]) -> Documents:
        """Apply ``change`` to the current documents and store the result as the next version."""
        with self._open(True) as b:
            seq, docs = self._latest(b)
            change(docs)
            seq += 1
            b.pwrite(encode_slot(seq, docs), (seq % 2) * SLOT_SIZE)
            b.flush()
            return docs

    def is_formatted(self) -> bool:
        with self._open(False) as b:
            return any(decode_slot(b.pread, s * SLOT_SIZE) is not None for s in (0, 1))
