"""Typed errors of the VHD engine.

Every failure the engine can detect is a subclass of :class:`VhdError`, so callers (the SR engine, the CLI) can catch
one base class and still tell a corrupt image from a missing parent. Messages name the image and, for format errors,
the offending on-disk field, because the person reading them has to decide what to repair.
"""

from typing import Optional


class VhdError(Exception):
    """Base class of every error raised by :mod:`smapi.vhd`."""

    def __init__(self, message: str, *, image: Optional[str] = None) -> None:
        self.image = image
        self.reason = message
        super().__init__(f"{image}: {message}" if image else message)


class InvalidArgument(VhdError, ValueError):
    """The caller asked for something impossible (bad size, block size, range...)."""


class VhdFormatError(VhdError):
    """The bytes on disk do not form a valid VHD; ``field`` names the structure member at fault."""

    def __init__(self, message: str, *, field: str, image: Optional[str] = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", image=image)


class CorruptImage(VhdFormatError):
    """A structure is damaged (bad checksum, pointer outside the file, overlapping blocks, ...)."""


class UnsupportedImage(VhdFormatError):
    """A valid but unsupported variant (deprecated disk type, block size above 2 MiB, raw parent, ...)."""


class ChainError(VhdError):
    """Base class of errors about the parent chain as a whole."""


class ChainTooDeep(ChainError):
    """A chain would exceed the maximum number of images (30, as XenServer's MAX_CHAIN_SIZE)."""


class ChainLoop(ChainError):
    """Following parent links came back to an image already in the chain."""


class ParentNotFound(ChainError):
    """No parent locator named an image the resolver could open."""


class ParentMismatch(ChainError):
    """The parent found does not carry the UUID (or geometry) the child expects."""


class UnsafeParentPath(ChainError):
    """A parent locator holds an absolute path or climbs out of the resolver's directory with ``..``."""


class LocatorTooLong(VhdError):
    """A new parent name does not fit into the space reserved for the existing parent locators."""


class ReadOnlyImage(VhdError):
    """A write was attempted through a read-only view."""


class OutOfRange(VhdError):
    """An I/O request or a resize target lies outside what the image can address."""


class IncompleteIO(VhdError):
    """The backing returned fewer bytes than the image structure promises (file truncated under us)."""
