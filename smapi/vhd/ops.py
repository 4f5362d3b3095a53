"""Path-or-backing wrappers of the image operations (coalesce, resize, reparent, check, repair, transfer)."""

import os
from typing import Callable, Iterator, List, Optional

from . import constants as C
from .api import open_chain, open_image
from .backing import FileBacking
from .chain import Chain, build_chain, open_parent_image
from .check import CheckReport, check_image
from .coalesce import coalesce_images
from .errors import ChainLoop, ChainTooDeep, ParentMismatch, VhdError, VhdFormatError
from .image import VhdImage
from .info import ImageInfo, image_info, uuid_str
from .meta import reset_image, set_parent_image
from .rawio import export_raw_from, import_raw_into
from .refs import ImageRef, backing_of, is_path, opened, resolver_for
from .repair import repair_image
from .resize import resize_image
from .resolver import ParentResolver
from .stream import stream_vhd as _stream_chain

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
        parent = VhdImage.open(pb, name=getattr(pb, "name", parent_name))
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
        name = os.fspath(target) if is_path(target) else getattr(target, "name", "<backing>")  # type: ignore
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
            fd = os.open(os.fspath(dest), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)  # type: ignore[arg-type]
            out = FileBacking(fd, writable=True)
            try:
                return export_raw_from(chain, out, progress=progress)
            finally:
                os.close(fd)
        return export_raw_from(chain, dest, progress=progress)  # type: ignore[arg-type]


def stream_vhd(source: "ImageRef | Chain", *, resolver: Optional[ParentResolver] = None) -> Iterator[bytes]:
    """Stream the chain of ``source`` as one dynamic VHD (iterator of bytes chunks, about one block each)."""
    if isinstance(source, Chain):
        yield from _stream_chain(source)
        return
    with open_chain(source, resolver=resolver) as chain:
        yield from _stream_chain(chain)


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

