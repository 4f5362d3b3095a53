"""Pack and parse the fixed-size VHD structures: footer, dynamic header, parent locator entries, batmap header.

Parsing validates what a reader must trust before it can go on (cookies, checksums, sizes that drive allocations)
and raises :class:`CorruptImage` naming the field. Softer invariants (reserved bytes, timestamps) are left to
:mod:`smapi.vhd.check` so that images written by other tools still open.
"""

import struct
from dataclasses import dataclass, field, replace
from typing import Any, List, Optional

from . import constants as C
from .errors import CorruptImage, UnsupportedImage
from .geometry import byte_sum, checksum

_FOOTER = struct.Struct(">8sIIQI4sI4sQQIII16sBB426s")
_HEADER = struct.Struct(">8sQQIIII16sII512s")
_LOCATOR = struct.Struct(">IIIIQ")
_BATMAP = struct.Struct(">8sQIIIBB32s32s418s")
assert _FOOTER.size == 512 and _HEADER.size == 576 and _LOCATOR.size == 24 and _BATMAP.size == 512

FOOTER_CHECKSUM_AT = 64
HEADER_CHECKSUM_AT = 36
LOCATORS_AT = 576


@dataclass(frozen=True)
class Footer:
    """The 512-byte hard disk footer (also copied at offset 0 of dynamic and differencing disks)."""

    current_size: int
    disk_type: int
    uuid: bytes
    timestamp: int = 0
    original_size: int = -1
    geometry: int = 0
    data_offset: int = C.HEADER_OFFSET
    features: int = C.FEATURES_RESERVED
    version: int = C.FILE_FORMAT_VERSION
    creator_app: bytes = C.CREATOR_APP
    creator_version: int = C.CREATOR_VERSION
    creator_os: int = C.CREATOR_OS
    saved_state: int = 0
    hidden: int = 0
    reserved: bytes = bytes(426)
    cookie: bytes = C.FOOTER_COOKIE
    checksum: int = 0

    def pack(self) -> bytes:
        orig = self.current_size if self.original_size < 0 else self.original_size
        raw = bytearray(
            _FOOTER.pack(
                self.cookie, self.features, self.version, self.data_offset, self.timestamp, self.creator_app,
                self.creator_version, self.creator_os.to_bytes(4, "big"), orig, self.current_size, self.geometry,
                self.disk_type, 0, self.uuid, self.saved_state, self.hidden, self.reserved,
            )
        )
        struct.pack_into(">I", raw, FOOTER_CHECKSUM_AT, checksum(raw))
        return bytes(raw)

    def with_(self, **changes: Any) -> "Footer":
        return replace(self, **changes)


def parse_footer(raw: bytes, *, image: Optional[str] = None, where: str = "footer") -> Footer:
    """Decode and verify a footer; ``where`` ("footer" or "backup footer") is used in error messages."""
    if len(raw) < 512:
        raise CorruptImage(f"only {len(raw)} bytes, need 512", field=f"{where}", image=image)
    (cookie, features, version, data_offset, ts, app, app_ver, host_os, orig, cur, geom, dtype, csum, uuid, saved,
     hidden, reserved) = _FOOTER.unpack_from(raw)
    if cookie != C.FOOTER_COOKIE:
        if cookie == C.POISON_COOKIE:
            raise UnsupportedImage("image is disabled (v_poison cookie)", field=f"{where}.cookie", image=image)
        raise CorruptImage(f"bad cookie {cookie!r}", field=f"{where}.cookie", image=image)
    expect = checksum(raw[:512], FOOTER_CHECKSUM_AT)
    if csum != expect and not _legacy_hidden_checksum_ok(raw, app, app_ver, csum):
        raise CorruptImage(f"checksum {csum:#010x} != computed {expect:#010x}", field=f"{where}.checksum",
                           image=image)
    if dtype not in (C.DISK_FIXED, C.DISK_DYNAMIC, C.DISK_DIFF):
        raise UnsupportedImage(f"disk type {dtype} (only 2 fixed, 3 dynamic, 4 differencing)",
                               field=f"{where}.disk_type", image=image)
    if cur > C.MAX_VIRTUAL_SIZE:
        raise UnsupportedImage(f"virtual size {cur} above the 2040 GiB limit", field=f"{where}.current_size",
                               image=image)
    if dtype == C.DISK_FIXED:
        if data_offset != C.FIXED_DATA_OFFSET:
            # Tolerated by every reader; noted by check().
            pass
    elif data_offset != C.HEADER_OFFSET and (data_offset % 512 or data_offset > 1 << 40):
        raise CorruptImage(f"dynamic header offset {data_offset} is not a sane sector offset",
                           field=f"{where}.data_offset", image=image)
    return Footer(
        current_size=cur, disk_type=dtype, uuid=uuid, timestamp=ts, original_size=orig, geometry=geom,
        data_offset=data_offset, features=features, version=version, creator_app=app, creator_version=app_ver,
        creator_os=int.from_bytes(host_os, "big"), saved_state=saved, hidden=hidden, reserved=reserved,
        cookie=cookie, checksum=csum,
    )


def _legacy_hidden_checksum_ok(raw: bytes, app: bytes, app_ver: int, csum: int) -> bool:
    """Early td-util set ``hidden`` without updating the checksum (blktap ``vhd_validate_footer``)."""
    if app != b"tap\0" or app_ver not in (0x00000001, 0x00010001):
        return False
    fixed = bytearray(raw[:512])
    fixed[85] = 0
    return checksum(fixed, FOOTER_CHECKSUM_AT) == csum


@dataclass(frozen=True)
class Locator:
    """One of the eight parent locator entries of the dynamic header."""

    code: int = C.PLAT_NONE
    data_space: int = 0  # as stored (bytes for blktap/Hyper-V; sectors if < 512, per blktap's reader)
    data_length: int = 0
    reserved: int = 0
    data_offset: int = 0

    @property
    def space_bytes(self) -> int:
        """Reserved payload bytes, decoding blktap's "sectors if < 512, bytes otherwise" rule."""
        return self.data_space * 512 if self.data_space < 512 else self.data_space


@dataclass(frozen=True)
class Header:
    """The 1024-byte dynamic disk header ("cxsparse")."""

    table_offset: int
    max_table_entries: int
    block_size: int
    parent_uuid: bytes = bytes(16)
    parent_timestamp: int = 0
    parent_name: str = ""
    locators: List[Locator] = field(default_factory=lambda: [Locator()] * C.LOCATOR_COUNT)
    data_offset: int = C.HEADER_DATA_OFFSET
    version: int = C.HEADER_VERSION
    reserved1: int = 0
    parent_name_raw: bytes = b""
    cookie: bytes = C.HEADER_COOKIE
    checksum: int = 0

    def pack(self) -> bytes:
        # Keep the bytes we read when the name is unchanged: decoding replaced unpaired surrogates.
        if self.parent_name_raw and decode_parent_name(self.parent_name_raw) == self.parent_name:
            name = self.parent_name_raw.rstrip(b"\0")
        else:
            name = self.parent_name.encode("utf-16-be")
        if len(name) > 512:
            raise CorruptImage("parent name longer than 256 UTF-16 units", field="header.parent_name")
        raw = bytearray(C.HEADER_SIZE)
        _HEADER.pack_into(raw, 0, self.cookie, self.data_offset, self.table_offset, self.version,
                          self.max_table_entries, self.block_size, 0, self.parent_uuid, self.parent_timestamp,
                          self.reserved1, name.ljust(512, b"\0"))
        for i, loc in enumerate(self.locators):
            _LOCATOR.pack_into(raw, LOCATORS_AT + 24 * i, loc.code, loc.data_space, loc.data_length, loc.reserved,
                               loc.data_offset)
        struct.pack_into(">I", raw, HEADER_CHECKSUM_AT, checksum(raw))
        return bytes(raw)

    def with_(self, **changes: Any) -> "Header":
        return replace(self, **changes)


def decode_parent_name(raw: bytes) -> str:
    """UTF-16BE, NUL padded; blktap's early creator used a BOM-detected UTF-16. Unpaired surrogates are replaced."""
    raw = raw[: len(raw) // 2 * 2]
    # Cut at the first UTF-16 NUL unit (an even offset; find() keeps this in C for SR scans).
    i = raw.find(b"\0\0")
    while i != -1 and i % 2:
        i = raw.find(b"\0\0", i + 1)
    if i != -1:
        raw = raw[:i]
    if raw[:2] == b"\xff\xfe":
        return raw[2:].decode("utf-16-le", "replace")
    if raw[:2] == b"\xfe\xff":
        raw = raw[2:]
    return raw.decode("utf-16-be", "replace")


def parse_header(raw: bytes, *, image: Optional[str] = None) -> Header:
    """Decode and verify the dynamic header; sizes that drive allocation are bounded here."""
    if len(raw) < C.HEADER_SIZE:
        raise CorruptImage(f"only {len(raw)} bytes, need 1024", field="header", image=image)
    (cookie, data_offset, table_offset, version, entries, block_size, csum, puuid, pts, res1,
     pname) = _HEADER.unpack_from(raw)
    if cookie != C.HEADER_COOKIE:
        raise CorruptImage(f"bad cookie {cookie!r}", field="header.cookie", image=image)
    expect = checksum(raw[: C.HEADER_SIZE], HEADER_CHECKSUM_AT)
    if csum != expect:
        raise CorruptImage(f"checksum {csum:#010x} != computed {expect:#010x}", field="header.checksum",
                           image=image)
    if version != C.HEADER_VERSION:
        raise UnsupportedImage(f"header version {version:#010x}", field="header.version", image=image)
    if block_size < C.MIN_BLOCK_SIZE or block_size > C.MAX_BLOCK_SIZE or block_size & (block_size - 1):
        raise UnsupportedImage(f"block size {block_size} (need a power of two, 512 B .. 2 MiB)",
                               field="header.block_size", image=image)
    if table_offset % 512 or table_offset < 512:
        raise CorruptImage(f"table offset {table_offset} not a sector offset past the footer copy",
                           field="header.table_offset", image=image)
    locators = [Locator(*_LOCATOR.unpack_from(raw, LOCATORS_AT + 24 * i)) for i in range(C.LOCATOR_COUNT)]
    return Header(
        table_offset=table_offset, max_table_entries=entries, block_size=block_size, parent_uuid=puuid,
        parent_timestamp=pts, parent_name=decode_parent_name(pname), locators=locators, data_offset=data_offset,
        version=version, reserved1=res1, parent_name_raw=pname, cookie=cookie,
        checksum=csum,
    )


@dataclass(frozen=True)
class BatmapHeader:
    """blktap's "tdbatmap" header: where the 1-bit-per-block "fully allocated" map lives, plus the marker."""

    batmap_offset: int
    batmap_size: int  # sectors
    version: int = C.BATMAP_VERSION
    checksum: int = 0
    marker: int = 0
    keyhash_cookie: int = 0
    keyhash_nonce: bytes = bytes(32)
    keyhash_hash: bytes = bytes(32)
    reserved: bytes = bytes(418)
    cookie: bytes = C.BATMAP_COOKIE

    def pack(self) -> bytes:
        return _BATMAP.pack(self.cookie, self.batmap_offset, self.batmap_size, self.version, self.checksum,
                            self.marker, self.keyhash_cookie, self.keyhash_nonce, self.keyhash_hash, self.reserved)

    def with_(self, **changes: Any) -> "BatmapHeader":
        return replace(self, **changes)


def parse_batmap_header(raw: bytes) -> Optional[BatmapHeader]:
    """Return the batmap header, or None when the cookie is absent (the batmap is optional)."""
    if len(raw) < 512 or raw[:8] != C.BATMAP_COOKIE:
        return None
    cookie, off, size, version, csum, marker, khc, nonce, khash, reserved = _BATMAP.unpack_from(raw)
    return BatmapHeader(batmap_offset=off, batmap_size=size, version=version, checksum=csum, marker=marker,
                        keyhash_cookie=khc, keyhash_nonce=nonce, keyhash_hash=khash, reserved=reserved,
                        cookie=cookie)


def batmap_checksum(batmap: "bytes | bytearray", current_size: int, block_size: int) -> int:
    """blktap sums the map over ``max(512, pad512(curr_size >> 24))`` bytes: 1 bit per 2 MiB of *virtual* size.

    Generalised to other block sizes as one bit per block of the virtual size; identical for 2 MiB blocks.
    """
    nbytes = max(512, C.pad512((current_size // block_size) >> 3))
    return ~byte_sum(memoryview(batmap)[:nbytes]) & 0xFFFFFFFF
