"""Plain-data descriptions of images, shared by :func:`info` and :func:`scan_headers`."""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from . import constants as C
from .image import VhdImage


def uuid_str(raw: Optional[bytes]) -> Optional[str]:
    """Canonical text form; formatted by hand because ``uuid.UUID`` costs more than a header parse in scans."""
    if not raw or len(raw) != 16:
        return None
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class ImageInfo:
    """What the SR engine needs to know about one VHD without reading its data."""

    name: str
    disk_type: str  # "fixed" | "dynamic" | "differencing"
    uuid: Optional[str]
    parent_uuid: Optional[str]
    parent_name: Optional[str]  # the header's parent name (blktap: the parent's basename)
    virtual_size: int
    physical_size: int
    hidden: bool
    block_size: Optional[int] = None
    max_virtual_size: Optional[int] = None  # BAT room: resize up to this is footer-only
    allocated_blocks: Optional[int] = None
    marker: Optional[int] = None
    creator: str = ""
    error: Optional[str] = None  # set by scans for images that could not be read

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def image_info(img: VhdImage, *, count_blocks: bool = True) -> ImageInfo:
    f = img.footer
    creator = f.creator_app.decode("latin-1").rstrip("\0 ")
    return ImageInfo(
        name=img.name,
        disk_type=C.DISK_TYPE_NAMES.get(f.disk_type, str(f.disk_type)),
        uuid=uuid_str(f.uuid),
        parent_uuid=uuid_str(img.parent_uuid),
        parent_name=img.header.parent_name if img.is_differencing and img.header else None,
        virtual_size=f.current_size,
        physical_size=img.backing.size(),
        hidden=bool(f.hidden),
        block_size=img.block_size if img.header else None,
        max_virtual_size=img.capacity_limit,
        allocated_blocks=img.allocated_blocks() if count_blocks else None,
        marker=img.marker,
        creator=f"{creator} {f.creator_version >> 16}.{f.creator_version & 0xFFFF}",
    )
