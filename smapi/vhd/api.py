"""The public operations of the VHD engine, by path or backing: open, create, snapshot, clone, coalesce, resize,
reparent, check, repair, raw import/export and VHD streaming. :mod:`smapi.vhd` re-exports them."""

import os
from typing import Callable, Iterator, List, Optional

from . import constants as C
from .backing import Backing, FileBacking
from .chain import Chain, build_chain, open_parent_image
from .check import CheckReport, check_image
from .coalesce import coalesce_images
from .create import create_child_on, create_fixed_on, create_sparse_on
from .errors import ChainLoop, ChainTooDeep, InvalidArgument, ParentMismatch, VhdError, VhdFormatError
from .image import VhdImage
from .info import ImageInfo, image_info, uuid_str
from .meta import reset_image, set_parent_image
from .rawio import export_raw_from, import_raw_into
from .refs import ImageRef, backing_of, is_path, opened, resolver_for
from .repair import repair_image
from .resize import resize_image
from .resolver import DirectoryResolver, ParentResolver
from .view import chain_view


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
        child_dir = os.path.dirname(os.path.abspath(os.fspath(child)))
        parent_name = DirectoryResolver(child_dir).relative_name(parent)
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


Progress = Optional[Callable[[int, int], None]]


def coalesce(child: ImageRef, *, resolver: Optional[ParentResolver] = None, progress: Progress = None) -> int:
    """Copy ``child``'s data into its immediate parent (opened writable through ``resolver``).

    Returns the number of sectors copied. The child is not modified; re-point its children at the parent with
    :func:`set_parent` and delete it afterwards. The parent must not have other children.
    """
    with opened(child) as img:
        res = resolver_for(child, resolver)
        if res is None:
            raise VhdError("a resolver is needed to find the parent", image=img.name)
        parent, _ = open_parent_image(img, res, writable=True)
        try:
            return coalesce_images(img, parent, progress=progress)
        finally:
            parent.close()


def resize(target: ImageRef, size: int, *, max_size: Optional[int] = None) -> int:
    """Grow an image to ``size`` bytes; returns the new virtual size. Within the BAT room (see
    ``create_dynamic(max_size=...)``) only the footer changes; otherwise BAT and batmap move, data never does."""
    with opened(target, writable=True) as img:
        return resize_image(img, size, max_size=max_size)


def set_hidden(target: ImageRef, hidden: bool = True) -> None:
    """Set or clear blktap's hidden flag (both footers)."""
    with opened(target, writable=True) as img:
        img.set_hidden(hidden)


def set_marker(target: ImageRef, value: int) -> None:
    """Set blktap's one-byte marker in the batmap header."""
    with opened(target, writable=True) as img:
        img.set_marker(value)


def set_parent(child: ImageRef, parent_name: str, *, resolver: Optional[ParentResolver] = None,
               expected_uuid: Optional[str] = None, max_depth: int = C.MAX_CHAIN_DEPTH) -> None:
    """Reparent ``child`` onto the image the resolver finds under ``parent_name``.

    Checks: the new parent opens as a VHD, carries ``expected_uuid`` if given, its own chain resolves, the child
    is not in it (no loop) and the resulting depth stays within ``max_depth``. Then the child's parent UUID,
    timestamp, name and locators are rewritten in place.
    """
    res = resolver_for(child, resolver)
    if res is None:
        raise VhdError("a resolver is needed to find the new parent")
    with opened(child, writable=True) as img:
        pb = res.open_parent(parent_name)
        parent = VhdImage.open(pb, name=pb.name)
        try:
            if expected_uuid is not None and uuid_str(parent.uuid) != expected_uuid.lower():
                raise ParentMismatch(f"{parent_name!r} has UUID {uuid_str(parent.uuid)}, expected {expected_uuid}",
                                     image=img.name)
            pchain = build_chain(parent, res, max_depth=max_depth)
            try:
                if any(p.uuid == img.uuid for p in pchain.images):
                    raise ChainLoop(f"{parent_name!r} descends from this image", image=img.name)
                if pchain.depth + 1 > max_depth:
                    raise ChainTooDeep(f"new chain would have {pchain.depth + 1} images (limit {max_depth})",
                                       image=img.name)
                set_parent_image(img, parent, parent_name)
            finally:
                for p in pchain.images[1:]:
                    p.close()
        finally:
            parent.close()


def reset(target: ImageRef) -> None:
    """Zero a leaf: drop all its blocks, keeping its parent (VDI reset/revert)."""
    with opened(target, writable=True) as img:
        reset_image(img)


def allocated_blocks(target: ImageRef) -> int:
    """Number of blocks allocated in this image alone."""
    with opened(target) as img:
        return img.allocated_blocks()


def check(target: ImageRef, *, resolver: Optional[ParentResolver] = None, check_parents: bool = True,
          check_bitmaps: bool = True) -> CheckReport:
    """Verify every structural invariant; never raises for a damaged image (errors are in the report)."""
    try:
        with opened(target) as img:
            return check_image(img, resolver=resolver_for(target, resolver), check_parents=check_parents,
                               check_bitmaps=check_bitmaps)
    except VhdFormatError as e:
        name = os.fspath(target) if is_path(target) else target.name
        return CheckReport(name, errors=[f"{e.field}: {e.reason.split(': ', 1)[-1]}"])


def repair(target: ImageRef) -> List[str]:
    """Repair footers, tail, batmap and null UUID; returns the actions taken."""
    with opened(target, writable=True) as img:
        return repair_image(img)


def import_raw(raw: ImageRef, target: ImageRef, *, fixed: bool = False, block_size: int = C.DEFAULT_BLOCK_SIZE,
               progress: Progress = None) -> ImageInfo:
    """Create ``target`` (must not exist) as a dynamic (or fixed) VHD with ``raw``'s content; zero blocks stay
    unallocated."""
    src = backing_of(raw)
    try:
        dst = backing_of(target, writable=True, create=is_path(target))
        try:
            img = import_raw_into(src, dst, fixed=fixed, block_size=block_size, progress=progress)
            return image_info(img, count_blocks=True)
        finally:
            if is_path(target):
                dst.close()
    finally:
        if is_path(raw):
            src.close()


def export_raw(source: ImageRef, dest: ImageRef, *, resolver: Optional[ParentResolver] = None,
               progress: Progress = None) -> int:
    """Write the chain's virtual disk to ``dest`` (created or truncated) as a sparse raw file; returns bytes
    written (zeros are skipped)."""
    with open_chain(source, resolver=resolver) as chain:
        if is_path(dest):
            fd = os.open(os.fspath(dest), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            out = FileBacking(fd, writable=True)
            try:
                return export_raw_from(chain, out, progress=progress)
            finally:
                os.close(fd)
        return export_raw_from(chain, dest, progress=progress)


def stream_vhd(source: "ImageRef | Chain", *, resolver: Optional[ParentResolver] = None) -> Iterator[bytes]:
    """Stream the chain of ``source`` as one dynamic VHD (iterator of bytes pieces of at most 1 MiB); see
    :mod:`smapi.vhd.view` for random access to the same bytes."""
    if isinstance(source, Chain):
        yield from chain_view(source).pieces()
        return
    with open_chain(source, resolver=resolver) as chain:
        yield from chain_view(chain).pieces()


def clone(source: ImageRef, dest: ImageRef, *, resolver: Optional[ParentResolver] = None) -> ImageInfo:
    """Full, standalone copy of ``source``'s chain as a new dynamic VHD (``vhd-util copy``; an SR-level VDI clone
    is two :func:`snapshot` calls over a shared parent instead)."""
    out = backing_of(dest, writable=True, create=is_path(dest))
    try:
        pos = 0
        for chunk in stream_vhd(source, resolver=resolver):
            out.pwrite(chunk, pos)
            pos += len(chunk)
        out.flush()
        with open_image(out) as img:
            return image_info(img)
    finally:
        if is_path(dest):
            out.close()

