"""Volumes a driver opens itself (LVs through a segment map, LUNs), served natively from their block devices.

The driver's opener (``ImageSpec.opener``) is called here, in the process that starts the server, exactly as the
Python plugin calls it inside nbdkit. Every image of the chain it yields is asked where its bytes lie
(:meth:`smapi.vhd.Backing.device_extents`); the C plugin is then given each image as ``map=OFFSET:LENGTH:DEVICE``
runs and does its own I/O on the devices. A mapped image keeps its size: the C engine never grows it, so a
writable VHD leaf must already hold room for every block it may still allocate (a thin leaf is inflated before it
is served; a thick one by the opener's volume when asked for its extents), else the Python plugin serves it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from ..model import ImageSpec

Run = Tuple[str, int, int]  # (device, offset, length)


@dataclass(frozen=True)
class MappedImage:
    """One image of a chain as the C plugin takes it: a name for messages and its device runs, in order."""

    name: str
    runs: Tuple[Run, ...]

    def args(self, key: str) -> List[str]:
        return [f"{key}={self.name}"] + [f"map={offset}:{length}:{device}" for device, offset, length in self.runs]


@dataclass(frozen=True)
class Layout:
    """A whole image, leaf first; ``size`` is a raw image's byte size (its LV holds whole extents)."""

    images: Tuple[MappedImage, ...]
    size: Optional[int] = None


class NotMappable(Exception):
    """The volume cannot be served from its devices; the message says why (shown as the engine's reason)."""


def _opener(ref: str) -> Callable[..., Any]:
    """The driver's opener from its ``module:function`` reference (the one the Python plugin calls too)."""
    module, _, func = ref.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
    return fn


def _runs(backing: Any, name: str) -> Tuple[Run, ...]:
    runs = backing.device_extents()
    if not runs:
        raise NotMappable(f"{name} has no block device map")
    return tuple((str(d), int(o), int(n)) for d, o, n in runs)


def _room_needed(img: Any) -> int:
    """Bytes a leaf needs to allocate every block it has not: a block's data is 4 KiB aligned, so each new block
    takes its bitmap padded to 4 KiB plus the block (smapi.vhd.layout.aligned_block_sector)."""
    from ...vhd import constants as C
    from ...vhd.layout import aligned_block_sector

    free = img.bat.count(C.BAT_UNUSED)
    end = img.end_of_data()
    if free:
        first = aligned_block_sector(end, img.bitmap_size // C.SECTOR) * C.SECTOR + img.bitmap_size + img.block_size
        stride = C.ceil_div(img.bitmap_size, C.DATA_ALIGNMENT) * C.DATA_ALIGNMENT + img.block_size
        end = first + (free - 1) * stride
    return end + C.SECTOR


def _vhd_layout(leaf: Any, resolver: Any, description: str, writable: bool) -> Layout:
    from ...vhd import VhdError, open_chain

    try:
        chain = open_chain(leaf, resolver=resolver)
    except (OSError, VhdError) as e:
        raise NotMappable(f"cannot open the VHD chain of {description}: {e}") from e
    try:
        names = [description] + list(chain.names[1:])
        # The runs first: asking a writable thick leaf for them inflates it (a fresh snapshot's leaf). What the
        # server can address is their sum (the volume's own size is where its image ends, not its LV's).
        images = tuple(MappedImage(n, _runs(img.backing, n)) for n, img in zip(names, chain.images))
        if writable and not chain.images[0].is_fixed:
            need, have = _room_needed(chain.images[0]), sum(length for _, _, length in images[0].runs)
            if need > have:
                raise NotMappable(f"{description} holds {have} bytes but may need {need}: the server could not "
                                  "grow it without lvm")
        return Layout(images)
    finally:
        chain.close()


def resolve(image: ImageSpec, *, writable: bool) -> Layout:
    """Call ``image``'s opener and map its chain onto devices; :class:`NotMappable` says why not."""
    assert image.opener is not None
    try:
        leaf, resolver = _opener(image.opener)(image.opener_args(), writable=writable)
    except Exception as e:  # the opener is the driver's code: any failure means "serve it the Python way"
        raise NotMappable(f"the volume's opener failed: {e}") from e
    try:
        if image.kind == "raw":
            return Layout((MappedImage(image.path, _runs(leaf, image.path)),), int(leaf.size()))
        return _vhd_layout(leaf, resolver, image.path, writable)
    finally:
        leaf.close()
