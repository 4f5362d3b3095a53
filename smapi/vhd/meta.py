"""Metadata-only changes the SR engine needs: hidden flag, reparent, reset of a leaf."""

from . import constants as C
from . import locators
from .bat import new_bat
from .errors import InvalidArgument, LocatorTooLong, ParentMismatch, UnsupportedImage
from .image import VhdImage


def set_parent_image(child: VhdImage, parent: VhdImage, parent_name: str) -> None:
    """Point ``child`` at ``parent`` (``vhd-util modify -p``): parent UUID, timestamp, name and locators.

    Locators are rewritten in place and never grown (:class:`LocatorTooLong` if the name does not fit). The
    timestamp is the parent's mtime where the backing has one (blktap), else the parent's creation time.
    """
    child.require_writable()
    if not child.is_differencing or child.header is None:
        raise UnsupportedImage("only a differencing image has a parent", field="footer.disk_type", image=child.name)
    if parent.uuid == child.uuid:
        raise ParentMismatch("an image cannot be its own parent", image=child.name)
    name = locators.safe_relative_name(parent_name, what="new parent name")
    h = child.header
    new_locs = []
    writes = []
    for i, loc in enumerate(h.locators):
        if loc.code in (C.PLAT_NONE, C.PLAT_MAC):
            new_locs.append(loc)
            continue
        code = C.PLAT_W2KU if loc.code == C.PLAT_WI2K else C.PLAT_W2RU if loc.code == C.PLAT_WI2R else loc.code
        payload = locators.encode(code, name)
        if len(payload) > loc.space_bytes:
            raise LocatorTooLong(f"{parent_name!r} needs {len(payload)} bytes, locator {i} holds {loc.space_bytes}",
                                 image=child.name)
        if loc.data_offset + loc.space_bytes > child.file_size:
            raise UnsupportedImage("locator payload outside the file", field=f"header.locator[{i}].data_offset",
                                   image=child.name)
        writes.append((loc.data_offset, payload.ljust(loc.space_bytes, b"\0")))
        new_locs.append(loc.__class__(code=code, data_space=loc.data_space, data_length=len(payload),
                                      reserved=0, data_offset=loc.data_offset))
    mtime = parent.backing.mtime()
    pts = max(0, int(mtime) - C.VHD_EPOCH) if mtime is not None else parent.footer.timestamp
    for off, data in writes:
        child.backing.pwrite(data, off)
    child.backing.flush()
    child.update_header(h.with_(parent_uuid=parent.uuid, parent_timestamp=pts,
                                parent_name=name.rsplit("/", 1)[-1], locators=new_locs))
    child.backing.flush()


def reset_image(img: VhdImage) -> None:
    """Make a leaf empty over the same parent: every block unallocated, file trimmed to its metadata.

    Order: batmap cleared first (a clear bit is always safe), then the BAT in one write, then the footer at the
    new end of data.
    """
    img.require_writable()
    if img.header is None:
        raise InvalidArgument("a fixed image cannot be reset; recreate it", image=img.name)
    img.commit()
    bat = img.bat
    if img.batmap is not None:
        img.write_batmap(bytearray(len(img.batmap)))
        img.backing.flush()
    img.replace_bat(new_bat(len(bat)))
    img.write_footer()
    img.backing.flush()
