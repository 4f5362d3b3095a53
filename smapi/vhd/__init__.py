"""Native VHD engine: fixed, dynamic and differencing images in blktap's layout, chains, and the operations the SR
engine builds VDI snapshot/clone/compose/resize/GC on.

Everything works on a :class:`Backing` (``pread``/``pwrite``/``size``/``resize``/``flush``); functions taking an
``ImageRef`` accept a path or a backing. Parents are found through a :class:`ParentResolver`; for a path the
default is :class:`DirectoryResolver` on the image's own directory, and locators are never followed to absolute or
``..`` paths.

Creating::

    create_dynamic(target, size, *, block_size=2 MiB, max_size=None, uuid=None) -> ImageInfo
    create_fixed(target, size, *, uuid=None) -> ImageInfo
    snapshot(parent, child, *, parent_name=None, resolver=None, max_depth=30, max_size=None, uuid=None) -> ImageInfo
    clone(source, dest, *, resolver=None) -> ImageInfo           # flattened standalone copy
    import_raw(raw, target, *, fixed=False, block_size=2 MiB) -> ImageInfo

Reading and writing::

    open_image(target, *, writable=False) -> VhdImage
    open_chain(target, *, resolver=None, writable=False, max_depth=30) -> Chain
    Chain.read(offset, length) -> bytes / Chain.readinto(buf, offset) / Chain.write(offset, data)
    Chain.batch() (context manager: one metadata commit for many writes) / Chain.flush() / Chain.close()
    export_raw(source, dest, *, resolver=None) -> int
    stream_vhd(source, *, resolver=None) -> Iterator[bytes]; stream_length(chain) -> int

VHD files for others (downloads, exports) and from others (uploads, imports)::

    chain_view(chain, *, uid=None) -> VhdView                    # a chain as one dynamic VHD, random access
    build_view(size, present, read, *, uid=None, block_size=2 MiB, parent=None) -> VhdView  # dynamic/differencing
    VhdView.length / .pieces(start, end) / .read(offset, length)
    VhdReceiver(disk_size, write, *, length=None): .feed(bytes) ... .finish()   # applies a streamed VHD
    stream_footer(first_512_bytes) -> Footer                      # what a streamed VHD announces

Maintenance (SR engine GC, resize, reset)::

    coalesce(child, *, resolver=None, progress=None) -> int       # sectors copied into the parent
    set_parent(child, parent_name, *, resolver=None, expected_uuid=None, max_depth=30)
    set_hidden(target, hidden=True); set_marker(target, value)
    resize(target, size, *, max_size=None) -> int
    reset(target)                                                 # empty leaf over the same parent
    allocated_blocks(target) -> int
    info(target, *, count_blocks=True) -> ImageInfo
    scan_headers(directory_or_paths, *, suffix=".vhd") -> list[ImageInfo]   # header-only, fast
    check(target, *, resolver=None, check_parents=True, check_bitmaps=True) -> CheckReport
    repair(target) -> list[str]

Errors are :class:`VhdError` subclasses (see :mod:`smapi.vhd.errors`).
"""

from .api import (
    allocated_blocks,
    check,
    clone,
    coalesce,
    create_dynamic,
    create_fixed,
    export_raw,
    import_raw,
    info,
    open_chain,
    open_image,
    repair,
    reset,
    resize,
    set_hidden,
    set_marker,
    set_parent,
    snapshot,
    stream_vhd,
)
from .backing import Backing, FileBacking, MemoryBacking
from .chain import Chain
from .check import CheckReport
from .constants import DEFAULT_BLOCK_SIZE, MAX_CHAIN_DEPTH, MAX_VIRTUAL_SIZE
from .errors import (
    ChainError,
    ChainLoop,
    ChainTooDeep,
    CorruptImage,
    IncompleteIO,
    InvalidArgument,
    LocatorTooLong,
    OutOfRange,
    ParentMismatch,
    ParentNotFound,
    ReadOnlyImage,
    UnsafeParentPath,
    UnsupportedImage,
    VhdError,
    VhdFormatError,
)
from .image import VhdImage
from .info import ImageInfo
from .receive import VhdReceiver, stream_footer
from .resolver import DirectoryResolver, NoParentResolver, ParentResolver
from .scan import scan_headers
from .view import VhdView, build_view, chain_view, stream_length

__all__ = [
    "Backing", "FileBacking", "MemoryBacking", "Chain", "CheckReport", "ImageInfo", "VhdImage",
    "DirectoryResolver", "NoParentResolver", "ParentResolver",
    "DEFAULT_BLOCK_SIZE", "MAX_CHAIN_DEPTH", "MAX_VIRTUAL_SIZE",
    "VhdError", "VhdFormatError", "CorruptImage", "UnsupportedImage", "ChainError", "ChainTooDeep", "ChainLoop",
    "ParentNotFound", "ParentMismatch", "UnsafeParentPath", "LocatorTooLong", "ReadOnlyImage", "OutOfRange",
    "IncompleteIO", "InvalidArgument",
    "create_dynamic", "create_fixed", "snapshot", "clone", "import_raw", "open_image", "open_chain", "export_raw",
    "stream_vhd", "stream_length", "VhdView", "build_view", "chain_view", "VhdReceiver", "stream_footer",
    "coalesce", "set_parent", "set_hidden", "set_marker", "resize", "reset",
    "allocated_blocks", "info", "scan_headers", "check", "repair",
]
