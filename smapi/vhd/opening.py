"""Reading an image's metadata at open: footer lookup (primary, 511-byte legacy, backup copy), header, batmap.

Every bound is checked before anything is read or allocated, so a forged field becomes a :class:`CorruptImage`
naming it, never a huge read or a read outside the file.
"""

from typing import NamedTuple, Optional, Tuple

from . import constants as C
from .backing import Backing
from .buffers import read_exact
from .errors import CorruptImage, UnsupportedImage, VhdError
from .layout import bat_bytes, batmap_sectors
from .structs import BatmapHeader, Footer, Header, parse_batmap_header, parse_footer, parse_header


class Metadata(NamedTuple):
    footer: Footer
    header: Optional[Header]  # None for a fixed image
    file_size: int
    primary_ok: bool  # False when the primary footer is missing and the backup copy at 0 is used
    footer_pos: int  # where the primary footer is (-1: nowhere valid)


def _primary_footer(backing: Backing, size: int, name: str) -> Tuple[Optional[Footer], Optional[VhdError], int]:
    footer_pos = size - C.FOOTER_SIZE
    try:
        return parse_footer(read_exact(backing, C.FOOTER_SIZE, footer_pos, name, "footer", size), image=name), \
            None, footer_pos
    except VhdError as e:
        if size % C.SECTOR == C.SECTOR - 1:  # pre-2004 511-byte footer
            try:
                raw = read_exact(backing, 511, size - 511, name, "footer", size) + b"\0"
                return parse_footer(raw, image=name), None, size - 511
            except VhdError:
                pass
        return None, e, footer_pos


def read_metadata(backing: Backing, name: str) -> Metadata:
    """Footer and header of the image on ``backing``; raises a :class:`VhdFormatError` naming the bad field."""
    size = backing.size()
    if size < C.FOOTER_SIZE:
        raise CorruptImage(f"file is {size} bytes, smaller than a footer", field="footer", image=name)
    primary, primary_err, footer_pos = _primary_footer(backing, size, name)
    head = backing.pread(min(C.DEFAULT_TABLE_OFFSET, size), 0)
    backup: Optional[Footer] = None
    if head[:8] == C.FOOTER_COOKIE:
        try:
            backup = parse_footer(head[: C.FOOTER_SIZE], image=name, where="backup footer")
        except VhdError as e:
            if primary is None:
                raise primary_err or e from None
    if primary is not None:
        footer, primary_ok = primary, True
    elif backup is not None and backup.disk_type != C.DISK_FIXED:
        # A primary footer overwritten by a block allocation in flight is normal (ref. §1.1).
        footer, primary_ok = backup, False
    else:
        assert primary_err is not None
        raise primary_err
    if footer.disk_type == C.DISK_FIXED:
        if footer.current_size > footer_pos:
            raise CorruptImage(f"fixed size {footer.current_size} exceeds the {footer_pos} data bytes present",
                               field="footer.current_size", image=name)
        return Metadata(footer, None, size, primary_ok, footer_pos)
    hoff = footer.data_offset
    if hoff + C.HEADER_SIZE > size:
        raise CorruptImage(f"header at {hoff} lies past the end of the file ({size})", field="footer.data_offset",
                           image=name)
    raw = head[hoff : hoff + C.HEADER_SIZE] if hoff + C.HEADER_SIZE <= len(head) else \
        read_exact(backing, C.HEADER_SIZE, hoff, name, "header", size)
    header = parse_header(raw, image=name)
    validate_header(header, footer, size, name)
    return Metadata(footer, header, size, primary_ok, footer_pos if primary_ok else -1)


def validate_header(h: Header, f: Footer, size: int, name: str) -> None:
    """Bounds that protect memory and reads: a forged entry count must not make us read or allocate gigabytes."""
    if h.max_table_entries * h.block_size < f.current_size:
        raise CorruptImage(f"{h.max_table_entries} entries x {h.block_size} B cannot hold {f.current_size} B",
                           field="header.max_table_entries", image=name)
    if h.max_table_entries > C.ceil_div(C.MAX_VIRTUAL_SIZE, h.block_size):
        raise CorruptImage(f"{h.max_table_entries} entries exceed the 2040 GiB maximum",
                           field="header.max_table_entries", image=name)
    if h.table_offset + h.max_table_entries * 4 > size:
        raise CorruptImage(f"BAT of {h.max_table_entries} entries at {h.table_offset} runs past the end of the file"
                           f" ({size} bytes)", field="header.max_table_entries", image=name)
    if h.data_offset != C.HEADER_DATA_OFFSET:
        raise CorruptImage(f"{h.data_offset:#x} (must be all ones)", field="header.data_offset", image=name)
    if f.disk_type == C.DISK_DIFF and h.parent_uuid == bytes(16):
        raise UnsupportedImage("differencing disk over a raw parent (null parent UUID)", field="header.parent_uuid",
                               image=name)


def probe_batmap(backing: Backing, header: Header, file_size: int) -> Tuple[Optional[BatmapHeader], int, str]:
    """blktap keeps a batmap header right after the BAT; present for tap >= 1.2, probed by cookie otherwise.

    Returns (batmap header or None, its offset, why a batmap found was ignored)."""
    off = header.table_offset + bat_bytes(header.max_table_entries)
    if off + C.SECTOR > file_size:
        return None, 0, ""
    hdr = parse_batmap_header(backing.pread(C.SECTOR, off))
    if hdr is None:
        return None, 0, ""
    need = batmap_sectors(header.max_table_entries)
    if hdr.batmap_size < need or hdr.batmap_size > 2 * need + 8 or \
            hdr.batmap_offset % C.SECTOR or hdr.batmap_offset + hdr.batmap_size * C.SECTOR > file_size:
        # A batmap we cannot trust is ignored: it is an optimisation, and ignoring it is the safe direction.
        return None, 0, "batmap header offset/size out of bounds"
    return hdr, off, ""
