"""Opening and creating images by path or backing: the entry points most callers start with."""

import os
from typing import Optional

from . import constants as C
from .backing import Backing
from .chain import Chain, build_chain
from .create import create_child_on, create_fixed_on, create_sparse_on
from .errors import ChainTooDeep, InvalidArgument
from .image import VhdImage
from .info import ImageInfo, image_info
from .refs import ImageRef, backing_of, is_path, opened, resolver_for
from .resolver import DirectoryResolver, ParentResolver


def _fresh_info(backing: Backing) -> ImageInfo:
    """Info of an image just created: nothing is allocated, so skip reading its (up to 4 MiB) BAT."""
    img = VhdImage.open(backing, owns_backing=False)
    inf = image_info(img, count_blocks=img.is_fixed)
    if inf.allocated_blocks is None:
        inf.allocated_blocks = 0
    return inf


def open_image(target: ImageRef, *, writable: bool = False) -> VhdImage:
    """Open one image (no parents). Close it with ``.close()`` or use it as a context manager."""
    backing = backing_of(target, writable=writable)
    try:
        return VhdImage.open(backing, writable=writable, owns_backing=is_path(target))
    except BaseException:
        if is_path(target):
            backing.close()
        raise


def open_chain(target: ImageRef, *, resolver: Optional[ParentResolver] = None, writable: bool = False,
               max_depth: int = C.MAX_CHAIN_DEPTH) -> Chain:
    """Open a leaf and its ancestors as one virtual disk; only the leaf is writable.

    Parents are found through ``resolver`` (default for a path: the leaf's own directory). Raises
    :class:`ChainTooDeep`, :class:`ChainLoop`, :class:`ParentNotFound`, :class:`UnsafeParentPath` or
    :class:`ParentMismatch` when the chain cannot be assembled.
    """
    leaf = open_image(target, writable=writable)
    try:
        return build_chain(leaf, resolver_for(target, resolver), max_depth=max_depth)
    except BaseException:
        leaf.close()
        raise


def create_dynamic(target: ImageRef, size: int, *, block_size: int = C.DEFAULT_BLOCK_SIZE,
                   max_size: Optional[int] = None, uuid: Optional[bytes] = None) -> ImageInfo:
    """Create an empty dynamic VHD of ``size`` bytes (rounded up to the block size, blktap style).

    ``max_size`` preallocates BAT/batmap room so :func:`resize` up to it never moves anything. A path must not
    exist yet.
    """
    backing = backing_of(target, writable=True, create=is_path(target))
    try:
        create_sparse_on(backing, size, block_size=block_size, max_size=max_size, uid=uuid)
        return _fresh_info(backing)
    finally:
        if is_path(target):
            backing.close()


def create_fixed(target: ImageRef, size: int, *, uuid: Optional[bytes] = None) -> ImageInfo:
    """Create a fixed VHD (sparse data region where the backing supports it, then the footer)."""
    backing = backing_of(target, writable=True, create=is_path(target))
    try:
        create_fixed_on(backing, size, uid=uuid)
        return _fresh_info(backing)
    finally:
        if is_path(target):
            backing.close()


def snapshot(parent: ImageRef, child: ImageRef, *, parent_name: Optional[str] = None,
             resolver: Optional[ParentResolver] = None, max_depth: int = C.MAX_CHAIN_DEPTH,
             max_size: Optional[int] = None, uuid: Optional[bytes] = None) -> ImageInfo:
    """Create ``child``, a new empty differencing VHD over ``parent``; O(1) in the parent's allocated data.

    ``parent_name`` is what the child's locators store; for paths it defaults to the parent's path relative to the
    child's directory (the parent must be in it or below it). ``resolver`` resolves the parent's own ancestors for
    the depth check (default: the parent's directory). Raises :class:`ChainTooDeep` if the new chain would have
    more than ``max_depth`` images.
    """
    if parent_name is None:
        if not (is_path(parent) and is_path(child)):
            raise InvalidArgument("parent_name is required unless parent and child are paths")
        child_dir = os.path.dirname(os.path.abspath(os.fspath(child)))  # type: ignore[arg-type]
        parent_name = DirectoryResolver(child_dir).relative_name(parent)  # type: ignore[arg-type]
    pchain = open_chain(parent, resolver=resolver)
    try:
        if pchain.depth + 1 > max_depth:
            raise ChainTooDeep(f"parent chain already has {pchain.depth} images; limit is {max_depth}",
                               image=pchain.leaf.name)
        backing = backing_of(child, writable=True, create=is_path(child))
        try:
            create_child_on(backing, pchain.leaf, parent_name, uid=uuid, max_size=max_size)
            return _fresh_info(backing)
        finally:
            if is_path(child):
                backing.close()
    finally:
        pchain.close()


def info(target: ImageRef, *, count_blocks: bool = True) -> ImageInfo:
    """Metadata of one image; ``count_blocks`` reads the BAT to count allocated blocks."""
    with opened(target) as img:
        return image_info(img, count_blocks=count_blocks)


