"""Accept either a path or a :class:`Backing` wherever the public API takes an image."""

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional, Union

from .backing import Backing, FileBacking
from .errors import VhdError
from .image import VhdImage
from .resolver import DirectoryResolver, ParentResolver

if TYPE_CHECKING:
    from typing_extensions import TypeIs

ImageRef = Union[str, "os.PathLike[str]", Backing]
PathRef = Union[str, "os.PathLike[str]"]


def is_path(ref: object) -> "TypeIs[PathRef]":
    return isinstance(ref, (str, os.PathLike))


def backing_of(ref: ImageRef, *, writable: bool = False, create: bool = False, sync: bool = True) -> Backing:
    """A backing for ``ref``; paths are opened (the caller closes), backings are returned as they are."""
    if is_path(ref):
        try:
            return FileBacking(ref, writable=writable, create=create, sync=sync)
        except FileExistsError:
            raise VhdError(f"{os.fspath(ref)} already exists") from None
        except FileNotFoundError:
            raise VhdError(f"{os.fspath(ref)}: no such file") from None
        except IsADirectoryError:
            raise VhdError(f"{os.fspath(ref)} is a directory") from None
        except PermissionError as e:
            raise VhdError(f"{os.fspath(ref)}: {e.strerror}") from None
    assert isinstance(ref, Backing) or hasattr(ref, "pread"), f"not a path or Backing: {ref!r}"
    return ref


def resolver_for(ref: ImageRef, resolver: Optional[ParentResolver]) -> Optional[ParentResolver]:
    """The given resolver, or for a path the directory holding it (parents are looked up beside the child)."""
    if resolver is not None:
        return resolver
    if is_path(ref):
        return DirectoryResolver(os.path.dirname(os.path.abspath(os.fspath(ref))))
    return None


@contextmanager
def opened(ref: ImageRef, *, writable: bool = False) -> Iterator[VhdImage]:
    """Open ``ref`` as a :class:`VhdImage` for the duration of the block; close only what we opened."""
    backing = backing_of(ref, writable=writable)
    owns = is_path(ref)
    try:
        img = VhdImage.open(backing, writable=writable, owns_backing=owns)
    except BaseException:
        if owns:
            backing.close()
        raise
    try:
        yield img
    finally:
        img.close()
