"""Parent resolution: turn the relative name stored in a child's locators into an open :class:`Backing`.

The engine never opens a parent by itself. A resolver decides where names live: :class:`DirectoryResolver` maps
them inside one directory (file SRs); an LVM SR plugs in a resolver that maps ``VHD-<uuid>`` names to LVs.
"""

import os
from typing import Optional

from .backing import Backing, FileBacking
from .errors import ParentNotFound, UnsafeParentPath
from .locators import safe_relative_name


class ParentResolver:
    """Protocol: ``open_parent(name, writable=False) -> Backing``; raise :class:`ParentNotFound` if absent."""

    def open_parent(self, name: str, *, writable: bool = False) -> Backing:
        raise NotImplementedError


class DirectoryResolver(ParentResolver):
    """Looks names up inside ``directory`` only: no absolute paths, no ``..``, no symlink escaping it."""

    def __init__(self, directory: "str | os.PathLike[str]", *, sync: bool = True) -> None:
        self.directory = os.path.realpath(os.fspath(directory))
        self._sync = sync

    def path_of(self, name: str) -> str:
        """Absolute path for a locator name, after the safety checks."""
        rel = safe_relative_name(name)
        path = os.path.realpath(os.path.join(self.directory, rel))
        if os.path.commonpath([path, self.directory]) != self.directory:
            raise UnsafeParentPath(f"parent {name!r} resolves outside {self.directory} (symlink?)")
        return path

    def open_parent(self, name: str, *, writable: bool = False) -> Backing:
        path = self.path_of(name)
        try:
            return FileBacking(path, writable=writable, sync=self._sync)
        except FileNotFoundError:
            raise ParentNotFound(f"parent {name!r} not found in {self.directory}") from None
        except IsADirectoryError:
            raise ParentNotFound(f"parent {name!r} in {self.directory} is a directory") from None

    def relative_name(self, path: "str | os.PathLike[str]") -> str:
        """The locator name to store for ``path``, which must lie inside the directory."""
        real = os.path.realpath(os.fspath(path))
        if os.path.commonpath([real, self.directory]) != self.directory:
            raise UnsafeParentPath(f"{path} is outside {self.directory}; a child can only name parents beside it")
        return os.path.relpath(real, self.directory).replace(os.sep, "/")


class NoParentResolver(ParentResolver):
    """For callers that know the image has no parent (or only need the leaf's metadata)."""

    def __init__(self, reason: Optional[str] = None) -> None:
        self.reason = reason or "no parent resolver was given"

    def open_parent(self, name: str, *, writable: bool = False) -> Backing:
        raise ParentNotFound(f"cannot open parent {name!r}: {self.reason}")
