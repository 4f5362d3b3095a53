"""The contract of a raw LV backing: what `smapi.drivers.lvm.access` opens and the volumes of `volume.py` wrap.

A raw LV is a :class:`~smapi.vhd.Backing` whose ``size()`` is the LV size (whole extents), with two more
operations: zeroing a range (lvm never zeroes the extents it hands out), and a resize that may skip zeroing the
new bytes when the caller overwrites them before anything reads them.
"""

from __future__ import annotations

from abc import abstractmethod

from smapi.vhd import Backing


class RawLv(Backing):
    @abstractmethod
    def zero(self, offset: int, length: int) -> None:
        """Make ``length`` bytes at ``offset`` read as zeros."""

    @abstractmethod
    def resize(self, size: int, *, zero: bool = True) -> None:
        """lvresize to ``size`` (rounded up to extents); ``zero=False`` leaves the new bytes as they are."""
