"""Grow an image. Within the BAT room only the footer changes; beyond it the BAT and batmap move to the end of
the file (data blocks never move), then the header is switched over to them in one sector write."""

from typing import Dict, List, Optional, Tuple

from . import constants as C
from .bat import new_bat, pack_bat
from .buffers import Buffer
from .errors import InvalidArgument
from .geometry import geometry_capacity, geometry_u32
from .image import VhdImage
from .layout import batmap_sectors, round_size
from .structs import BatmapHeader, Footer, batmap_checksum

# Creators whose images qemu sizes by ``current_size`` (block/vpc.c vpc_ignore_current_size); for any other
# creator ("vpc ", "qemu", unknown ones) qemu takes the size from the CHS geometry, which rounds down.
SIZED_BY_CURRENT_SIZE = frozenset({b"win ", b"qem2", b"d2v ", b"d2v\0", b"CTXS", C.CREATOR_APP})
_MAX_GEOMETRY = (65535 << 16) | (16 << 8) | 255  # qemu uses current_size with this geometry, whatever the creator


def resized_footer_fields(footer: Footer, size: int) -> Dict[str, object]:
    """Footer changes for a new virtual size: size and geometry, and our own (blktap) creator identity when the
    image's creator would make qemu read the size from a geometry that does not hold it exactly (a qemu-made image
    grown to a 2 MiB multiple would otherwise shrink back to its CHS size in qemu)."""
    geometry = geometry_u32(size)
    fields: Dict[str, object] = {"current_size": size, "geometry": geometry}
    if footer.creator_app not in SIZED_BY_CURRENT_SIZE and geometry != _MAX_GEOMETRY and \
            geometry_capacity(geometry) != size:
        fields.update(creator_app=C.CREATOR_APP, creator_version=C.CREATOR_VERSION, creator_os=C.CREATOR_OS)
    return fields


def resize_image(img: VhdImage, new_size: int, *, max_size: Optional[int] = None) -> int:
    """Grow ``img`` to ``new_size`` bytes (blktap rounding: whole blocks for sparse images, sectors for fixed).

    ``max_size`` asks for extra BAT room when the metadata has to move anyway. Shrinking is refused. Returns the
    new virtual size. Crash safety: every intermediate state opens with the old or the new size and unchanged data.
    """
    img.require_writable()
    if new_size <= 0 or new_size > C.MAX_VIRTUAL_SIZE:
        raise InvalidArgument(f"size {new_size} outside 1 B .. 2040 GiB", image=img.name)
    if img.is_fixed:
        return _grow_fixed(img, C.pad512(new_size))
    size = round_size(new_size, img.block_size) if img.virtual_size % img.block_size == 0 else C.pad512(new_size)
    size = min(size, C.MAX_VIRTUAL_SIZE)
    if size < img.virtual_size:
        raise InvalidArgument(f"cannot shrink from {img.virtual_size} to {size} bytes", image=img.name)
    if size == img.virtual_size:
        return size
    img.commit()
    _ = img.bat  # loads the batmap too, whose checksum range follows the virtual size
    if size > img.capacity_limit:
        _move_metadata(img, max(size, max_size or 0))
    img.update_footer(**resized_footer_fields(img.footer, size))
    if img.batmap is not None and img.batmap_header is not None and \
            batmap_checksum(img.batmap, size, img.block_size) != img.batmap_header.checksum:
        img.write_batmap()
        img.backing.flush()
    return size


def _grow_fixed(img: VhdImage, size: int) -> int:
    old = img.virtual_size
    if size < old:
        raise InvalidArgument(f"cannot shrink from {old} to {size} bytes", image=img.name)
    if size == old:
        return size
    # New footer first: a crash then leaves a valid image of the new size; the old footer's 512 bytes (past the old
    # end, never written by the guest) are zeroed right after.
    footer = img.footer.with_(**resized_footer_fields(img.footer, size))
    img.backing.pwrite(footer.pack(), size)
    img.backing.flush()
    img.backing.pwrite(bytes(C.FOOTER_SIZE), old)
    img.backing.flush()
    img.moved_fixed_footer(footer)
    return size


def _move_metadata(img: VhdImage, room: int) -> None:
    """Write a larger BAT (+ batmap) past the last block, then point the header at it."""
    assert img.header is not None
    bs = img.block_size
    entries = C.ceil_div(room, bs)
    old = img.bat
    bat = new_bat(entries)
    bat[: len(old)] = old
    pos = C.ceil_div(img.end_of_data(), C.DATA_ALIGNMENT) * C.DATA_ALIGNMENT
    bufs: List[Buffer] = [pack_bat(bat)]
    bm_hdr_off = pos + len(bufs[0])
    new_batmap: Optional[Tuple[int, BatmapHeader, bytearray]] = None
    if img.batmap_header is not None:
        nsec = batmap_sectors(entries)
        batmap = bytearray(nsec * C.SECTOR)
        if img.batmap is not None:
            batmap[: len(img.batmap)] = img.batmap
        hdr = img.batmap_header.with_(batmap_offset=bm_hdr_off + C.SECTOR, batmap_size=nsec,
                                      checksum=batmap_checksum(batmap, img.virtual_size, bs))
        bufs += [hdr.pack(), batmap]
        new_batmap = (bm_hdr_off, hdr, batmap)
    end = pos + sum(len(b) for b in bufs)
    img.backing.pwritev(bufs, pos)  # unreferenced until the header switch below
    img.backing.flush()
    img.switch_tables(img.header.with_(table_offset=pos, max_table_entries=entries), bat, new_batmap, end)
