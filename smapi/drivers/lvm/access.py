"""Reaching an LV's bytes: one small interface, two implementations.

* :class:`KernelAccess` activates the LV and opens ``/dev/<vg>/<lv>``; used when device-mapper works.
* :class:`SegmentMapAccess` does I/O through the LV's segment map on the PVs (no device-mapper needed, so it also
  runs in containers and CI machines without the dm module).

Both return a raw LV backing: a :class:`~smapi.vhd.Backing` whose ``size()`` is the LV size, plus
``zero(offset, length)`` and ``resize(size, zero=...)`` (lvresize, then the new bytes read as zeros unless the
caller is about to overwrite them anyway).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Dict, List, Optional

from smapi.drivers.lvm.lvmcli import Lvm, device_mapper_available, size_arg
from smapi.drivers.lvm.rawlv import RawLv
from smapi.drivers.lvm.segmap import Extent, SegmentMapBacking, build_map, zero_range
from smapi.vhd import FileBacking

SEGMENT_FIELDS = ["lv_name", "seg_start_pe", "seg_pe_ranges", "segtype", "vg_extent_size"]


class LvAccess(ABC):
    """Opens LVs of one volume group for I/O."""

    kind = "abstract"

    def __init__(self, lvm: Lvm, vg: str) -> None:
        self.lvm = lvm
        self.vg = vg

    @abstractmethod
    def open(self, lv: str, *, writable: bool = False) -> RawLv: ...

    @abstractmethod
    def path(self, lv: str) -> str:
        """What a datapath hands to a consumer (a device node, or a description of where the data is)."""

    def release(self, lv: str) -> None:
        """The LV is no longer needed on this host (deactivate it where activation exists). Default: nothing to
        release (no activation)."""
        return None

    def lvresize(self, lv: str, size: int) -> None:
        self.lvm.run("lvresize", "-f", "-L", size_arg(size), f"{self.vg}/{lv}")


class SegmentMapAccess(LvAccess):
    kind = "segment-map"

    def __init__(self, lvm: Lvm, vg: str) -> None:
        super().__init__(lvm, vg)
        self._pe_start: Optional[Dict[str, int]] = None

    def pe_starts(self) -> Dict[str, int]:
        # pe_start is fixed at pvcreate time: read it once per substrate.
        if not self._pe_start:  # an empty answer is never right for an existing VG: ask again
            rows = self.lvm.pvs(["pv_name", "pe_start", "vg_name"])
            self._pe_start = {r["pv_name"]: int(r["pe_start"]) for r in rows if r.get("vg_name") == self.vg}
        return self._pe_start

    def extents(self, lv: str) -> List[Extent]:
        rows = self.lvm.lvs(SEGMENT_FIELDS, f"{self.vg}/{lv}", segments=True)
        if not rows:
            return []
        pe = self.pe_starts()
        if any(r["seg_pe_ranges"].rpartition(":")[0] not in pe for r in rows):
            self._pe_start = None  # a PV was added since: read again
            pe = self.pe_starts()
        return build_map(rows, pe, int(rows[0]["vg_extent_size"]))

    def open(self, lv: str, *, writable: bool = False) -> SegmentMapBacking:
        return SegmentMapBacking(f"{self.vg}/{lv}", self.extents(lv), writable=writable,
                                 loader=lambda: self.extents(lv), resizer=lambda size: self.lvresize(lv, size))

    def path(self, lv: str) -> str:
        # No device node can exist without device-mapper; name the LV the way lvm does.
        return f"/dev/{self.vg}/{lv}"


class KernelLvBacking(FileBacking, RawLv):
    """An activated LV's device node; resize goes through lvm, and the node follows the new size."""

    def __init__(self, access: KernelAccess, lv: str, *, writable: bool) -> None:
        super().__init__(access.path(lv), writable=writable)
        self._access = access
        self._lv = lv

    def zero(self, offset: int, length: int) -> None:
        zero_range(self.fd, offset, length)

    def resize(self, size: int, *, zero: bool = True) -> None:
        old = self.size()
        self.flush()
        self._access.lvresize(self._lv, size)
        new = self.size()
        if zero and new > old:
            self.zero(old, new - old)


class KernelAccess(LvAccess):  # pragma: no cover - needs device-mapper, which CI machines lack
    kind = "kernel"

    def open(self, lv: str, *, writable: bool = False) -> KernelLvBacking:
        self.lvm.run("lvchange", "-ay", f"{self.vg}/{lv}")
        return KernelLvBacking(self, lv, writable=writable)

    def path(self, lv: str) -> str:
        return f"/dev/{self.vg}/{lv}"

    def release(self, lv: str) -> None:
        if os.path.exists(self.path(lv)):
            self.lvm.run("lvchange", "-an", f"{self.vg}/{lv}")


def access_for(lvm: Lvm, vg: str) -> LvAccess:
    """The kernel path when device-mapper answers and lvm may activate; the segment map otherwise."""
    if lvm.activation and device_mapper_available():
        return KernelAccess(lvm, vg)
    return SegmentMapAccess(lvm, vg)
