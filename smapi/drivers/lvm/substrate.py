"""The volume-group substrate: an SR is one LVM volume group, each image one LV (classic LVHD layout).

In the volume group ``VG_XenStorage-<sr>`` (tags ``smapi`` and ``provisioning=<thick|thin>``):

    MGT            8 MiB: the SR's metadata documents (SR document with every VDI record, journal entries),
                   two checksummed slots replaced alternately (see :mod:`smapi.drivers.lvm.mgt`)
    VHD-<uuid>     a VDI's (or base copy's) VHD; the LV's last sector holds a copy of the VHD footer
    LV-<uuid>      a raw VDI; tag ``size=<bytes>`` records its exact size (LVs come in whole extents)
    leases         shared SRs only (tag ``shared=true``): the sanlock leases (:mod:`smapi.drivers.lvm.leases`)

Everything needed to attach the SR on another host is in the volume group. Host-local state is only the
generated lvm.conf and the lock files (single host: fcntl locks under ``$SMAPI_LVM_LOCK_DIR``, default
/run/lock/smapi-lvm/<vg>/, or ``$SMAPI_RUN_DIR/lvm/locks/<vg>/`` when a run directory is given: a host simulated
by its own run directory then has its own locks, as a real one has).
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import TYPE_CHECKING, Any, Collection, Dict, List, Optional, Tuple

from smapi.drivers.lvm.access import SEGMENT_FIELDS, LvAccess, SegmentMapAccess, access_for
from smapi.drivers.lvm.config import LvmConfig
from smapi.drivers.lvm.lvmcli import Lvm, size_arg, tags_of
from smapi.drivers.lvm.mgt import MGT_LV, MGT_SIZE, MgtStore
from smapi.drivers.lvm.provision import raw_lv_size
from smapi.drivers.lvm.rawlv import RawLv
from smapi.drivers.lvm.segmap import zero_range
from smapi.drivers.lvm.volume import RawVolume, VhdVolume
from smapi.interface.errors import Backend_error, Invalid_argument
from smapi.sr.locks import FileLock
from smapi.sr.names import check_component
from smapi.sr.runstate import ENV as RUN_ENV
from smapi.sr.runstate import run_dir
from smapi.sr.substrate import Substrate
from smapi.vhd import Backing, ParentNotFound, ParentResolver

if TYPE_CHECKING:
    from smapi.datapath.model import ImageSpec

VG_PREFIX = "VG_XenStorage-"
PREFIXES = {"vhd": "VHD-", "raw": "LV-"}
SMAPI_TAG = "smapi"
PROVISIONING_TAG = "provisioning="
#: a shared SR (sanlock leases in its `leases` LV): smapi.drivers.lvm.shared
SHARED_TAG = "shared=true"
LEASES_LV = "leases"
#: LVs of the SR itself, never volumes
RESERVED_LVS = (MGT_LV, LEASES_LV)
SIZE_TAG = "size="
LOCK_ENV = "SMAPI_LVM_LOCK_DIR"
DEFAULT_LOCK_DIR = "/run/lock/smapi-lvm"
CONF_ENV = "SMAPI_LVM_SYSTEM_DIR"
#: one pvs report answers both the VG's fields and each PV's data offset
PV_VG_FIELDS = ["pv_name", "pe_start", "vg_name", "vg_size", "vg_free", "vg_extent_size", "vg_tags", "pv_count",
                "vg_missing_pv_count"]
_LV_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_.-")
#: bytes at the start of a device that must be zero for it to count as unused
CLEAN_PREFIX = 1 << 20
#: the function a VDI's nbdkit server calls to open an LV (it lives apart: it imports this module)
OPENER = "smapi.drivers.lvm.serving:open_for_datapath"


def lvm_for(devices: List[str]) -> Lvm:
    conf = os.environ.get(CONF_ENV) or os.path.join(run_dir(), "lvm", "etc")
    return Lvm(devices, conf)


def vg_name_for(sr: str) -> str:
    name = VG_PREFIX + sr
    if not set(sr) <= _LV_CHARS or len(name) > 127:
        raise Backend_error.classic("ConfigDeviceInvalid", f"SR uuid {sr!r} cannot name a volume group")
    return name


def _missing_lv(err: Backend_error) -> bool:
    text = " ".join(getattr(err, "lvm_stderr", [])).lower()
    return "failed to find logical volume" in text or "not found" in text


class LvResolver(ParentResolver):
    """Parent locators name LVs of the same volume group (``VHD-<uuid>``)."""

    def __init__(self, substrate: VolumeGroupSubstrate) -> None:
        self.substrate = substrate

    def open_parent(self, name: str, *, writable: bool = False) -> Backing:
        # Only a plain LV name of this VG is followed: never a path, another VG's LV or the MGT volume.
        try:
            return self.substrate.open_volume(name, writable=writable)
        except (FileNotFoundError, ValueError, Invalid_argument):
            raise ParentNotFound(f"parent {name!r} is not an LV of {self.substrate.vg}") from None


class VolumeGroupSubstrate(Substrate):
    #: drop this host's page cache of an LV when opening it (a shared SR: other hosts write the PVs too)
    uncached = False

    def __init__(self, config: LvmConfig, vg: Optional[str], *, lvm: Optional[Lvm] = None) -> None:
        self.config = config
        self.devices = config.devices
        self.lvm = lvm or lvm_for(self.devices)
        self.vg = vg
        self._access: Optional[LvAccess] = None
        self._vg_row: Optional[Dict[str, str]] = None
        self._extent_size: Optional[int] = None
        self._mgt_extents: Any = None
        #: every LV's segment rows from one ``lvs`` call (see prime); dropped whenever this object changes an LV
        self._seg_cache: Optional[Dict[str, List[Dict[str, str]]]] = None
        #: an LV changed since _vg_row was read: its free space is out of date
        self._vg_stale = False

    # -- helpers --------------------------------------------------------------------------------------------------
    def _need_vg(self) -> str:
        if self.vg is None:
            raise Backend_error.classic("SRUnavailable", f"no smapi volume group on {','.join(self.devices)}")
        return self.vg

    @property
    def access(self) -> LvAccess:
        if self._access is None:
            self._access = access_for(self.lvm, self._need_vg())
        return self._access

    def _vg_info(self, fresh: bool = False) -> Dict[str, str]:
        """The VG's report row. One ``pvs`` (PV rows carry their VG's fields) also gives every PV's data offset,
        which the segment map needs: a verb pays one lvm call for both."""
        if self._vg_row is None or fresh:
            vg = self._need_vg()
            rows = [r for r in self.lvm.pvs(PV_VG_FIELDS) if r.get("vg_name") == vg]
            if rows and isinstance(self.access, SegmentMapAccess):
                self.access._pe_start = {r["pv_name"]: int(r["pe_start"]) for r in rows}
            if not rows:
                # A pvs that lists our PV without its VG: seen when another process ran lvm without --devices and
                # vgremove'd every VG it found (tests' cleanup with an empty device list; Lvm now refuses that).
                # Ask for the VG itself, which also says "not found" when that is really so.
                rows = self.lvm.vgs(PV_VG_FIELDS[2:], vg)
                if not rows:
                    raise Backend_error.classic("SRUnavailable", f"volume group {self.vg} not found")
            self._vg_row = rows[0]
            self._vg_stale = False
        return self._vg_row

    @property
    def extent_size(self) -> int:
        if self._extent_size is None:
            self._extent_size = int(self._vg_info()["vg_extent_size"])
        return self._extent_size

    def prime(self, *, extent_size: Optional[int] = None, pe_start: Optional[Dict[str, int]] = None) -> None:
        """Seed what another process already read (datapath openers) and read every LV's segment map with a
        single ``lvs``: opening a chain of N volumes then costs one lvm call instead of N + 2."""
        if extent_size:
            self._extent_size = int(extent_size)
        if pe_start and isinstance(self.access, SegmentMapAccess):
            self.access._pe_start = {k: int(v) for k, v in pe_start.items()}
        self._all_segments()

    def _all_segments(self) -> Dict[str, List[Dict[str, str]]]:
        """Every LV's segment rows (with size and tags), read once per verb and again only after this object
        changed an LV: the MGT, every open, list and size query of a verb share one ``lvs`` call."""
        if self._seg_cache is None:
            rows = self.lvm.lvs(SEGMENT_FIELDS + ["lv_size", "lv_tags"], self._need_vg(), segments=True)
            cache: Dict[str, List[Dict[str, str]]] = {}
            for row in rows:
                cache.setdefault(row["lv_name"], []).append(row)
            self._seg_cache = cache
        return self._seg_cache

    def _pe_starts(self) -> Dict[str, int]:
        access = self.access
        assert isinstance(access, SegmentMapAccess)
        if access._pe_start is None:
            self._vg_info()  # seeds them with the VG's fields (one pvs call for both)
        return access.pe_starts()

    def _forget_segments(self) -> None:
        self._seg_cache = None
        self._vg_stale = True  # free space changes with the LVs

    @property
    def provisioning(self) -> str:
        if self.config.provisioning:
            return self.config.provisioning
        for tag in tags_of(self._vg_info(), "vg_tags"):
            if tag.startswith(PROVISIONING_TAG):
                return tag[len(PROVISIONING_TAG):]
        return "thick"

    @property
    def shared(self) -> bool:
        """The volume group is a shared SR's (tagged at SR.create)."""
        return SHARED_TAG in tags_of(self._vg_info(), "vg_tags")

    def _lv(self, name: str) -> str:
        if not name or not set(name) <= _LV_CHARS or name[0] == "-" or name in (".", "..", *RESERVED_LVS):
            raise Invalid_argument("volume", f"{name[:60]!r} is not a valid LV name")
        return f"{self._need_vg()}/{name}"

    def _vg_exists(self) -> bool:
        if self.vg is None:
            return False
        try:
            self._vg_info(fresh=True)
            return True
        except Backend_error as e:
            if "not found" in " ".join(getattr(e, "lvm_stderr", [])).lower() or "not found" in e.message():
                return False
            raise

    # -- the SR as a whole ------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self._vg_exists() and self.load_document(self.SR_DOCUMENT) is not None

    def device_usage(self) -> Dict[str, str]:
        """Why each device counts as holding data (devices missing from the result look unused)."""
        used: Dict[str, str] = {}
        for row in self.lvm.pvs(["pv_name", "vg_name"]):
            vg = row.get("vg_name") or ""
            used[row["pv_name"]] = f"an LVM physical volume of volume group {vg}" if vg else "an LVM physical volume"
        for dev in self.devices:
            if dev in used:
                continue
            fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
            try:
                head = os.pread(fd, CLEAN_PREFIX, 0)
            finally:
                os.close(fd)
            if head.count(0) != len(head):
                used[dev] = "data in its first MiB (a partition table, file system or other signature)"
        return used

    def initialise(self) -> None:
        vg = self._need_vg()
        used = self.device_usage()
        ours = self._vg_exists()  # a create that died before writing the SR document: take it over
        if used and not (self.config.force or ours):
            what = "; ".join(f"{d} holds {why}" for d, why in sorted(used.items()))
            raise Backend_error.classic("SRInUse", f"{what}. Pass force=true in device_config to overwrite")
        if used:
            self._wipe_devices(used)
        self.lvm.run("pvcreate", "-ff", "-y", "--zero", "y", *self.devices)
        tags = [arg for tag in self.tags_for_new() for arg in ("--addtag", tag)]
        self.lvm.run("vgcreate", *tags, vg, *self.devices)
        self._vg_row = None
        self._change("lvcreate", "-an", "-Zn", "-Wn", "-y", "-L", size_arg(MGT_SIZE), "-n", MGT_LV, vg)
        self._forget_segments()
        self._mgt().format()

    def provisioning_for_new(self) -> str:
        return self.config.provisioning or "thick"

    def tags_for_new(self) -> List[str]:
        return [SMAPI_TAG, PROVISIONING_TAG + self.provisioning_for_new()]

    def _wipe_devices(self, used: Dict[str, str]) -> None:
        """Remove old volume groups and labels from our devices, then zero their first MiB (signatures)."""
        vgs = {row["vg_name"] for row in self.lvm.pvs(["pv_name", "vg_name"]) if row.get("vg_name")}
        for vg in sorted(vgs):
            self.lvm.run("vgremove", "-ff", "-y", vg)
        pvs = [row["pv_name"] for row in self.lvm.pvs(["pv_name"])]
        if pvs:
            self.lvm.run("pvremove", "-ff", "-y", *pvs)
        for dev in self.devices:
            fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
            try:
                zero_range(fd, 0, CLEAN_PREFIX)
                os.fsync(fd)
            finally:
                os.close(fd)

    def wipe(self, volumes: Collection[str]) -> None:
        # The volume group is the SR's own (created by SR.create): all of it goes, whatever `volumes` lists.
        vg = self._need_vg()
        # The SR document goes first: from then on the VG is no SR, whatever else a crash leaves.
        if self._vg_exists():
            self._mgt().update(lambda docs: docs.clear())
            self.lvm.run("vgremove", "-ff", "-y", vg)
        pvs = [row["pv_name"] for row in self.lvm.pvs(["pv_name", "vg_name"]) if not row.get("vg_name")]
        if pvs:
            self.lvm.run("pvremove", "-ff", "-y", *pvs)
        shutil.rmtree(self._lock_dir(), ignore_errors=True)

    def space(self) -> Tuple[int, int]:
        # Read again only if this verb changed an LV since: other verbs change LVs under the SR lock we hold.
        row = self._vg_info(fresh=self._vg_stale)
        return int(row["vg_size"]), int(row["vg_free"])

    def describe(self) -> Dict[str, str]:
        out = {"device": ",".join(self.devices)}
        if self.vg is not None and self._vg_exists():
            out["provisioning"] = self.provisioning
            if self.shared:
                out["shared"] = "true"
        return out

    def probe(self) -> List[Substrate]:
        found: List[Substrate] = []
        for vg, devices in self.volume_groups().items():
            if not vg.startswith(VG_PREFIX):
                continue
            sub = VolumeGroupSubstrate(LvmConfig(devices, None, False, vg[len(VG_PREFIX):]), vg, lvm=self.lvm)
            if sub.exists():
                found.append(sub)
        return found

    def volume_groups(self) -> Dict[str, List[str]]:
        """Every volume group with a PV on our devices, with those PVs."""
        out: Dict[str, List[str]] = {}
        for row in self.lvm.pvs(["pv_name", "vg_name"]):
            if row.get("vg_name"):
                out.setdefault(row["vg_name"], []).append(row["pv_name"])
        return out

    # -- volumes ----------------------------------------------------------------------------------------------
    def volume_name(self, uuid: str, fmt: str) -> str:
        return PREFIXES[fmt] + uuid

    @staticmethod
    def is_vhd(name: str) -> bool:
        return name.startswith(PREFIXES["vhd"])

    def _segments(self, name: str) -> List[Dict[str, str]]:
        self._lv(name)  # validates the name
        rows = self._all_segments().get(name)
        if not rows:
            raise FileNotFoundError(errno.ENOENT, f"no LV {name} in {self.vg}")
        return rows

    def _open_raw(self, name: str, writable: bool, rows: Optional[List[Dict[str, str]]] = None) -> RawLv:
        access = self.access
        if isinstance(access, SegmentMapAccess):
            rows = rows or self._segments(name)
            from smapi.drivers.lvm.segmap import SegmentMapBacking, build_map

            return SegmentMapBacking(f"{self.vg}/{name}", build_map(rows, self._pe_starts(), self.extent_size),
                                     writable=writable, loader=lambda: self._fresh_extents(name),
                                     resizer=lambda size: self._lvresize(name, size), uncached=self.uncached)
        return access.open(name, writable=writable)  # pragma: no cover - kernel path

    def _fresh_extents(self, name: str) -> List[Any]:
        """The LV's map as lvm has it now (after a resize), read with the whole VG's so later opens reuse it."""
        from smapi.drivers.lvm.segmap import build_map

        self._forget_segments()
        return build_map(self._segments(name), self._pe_starts(), self.extent_size)

    def _lvresize(self, name: str, size: int) -> None:
        try:
            self.access.lvresize(name, size)
        finally:
            self._forget_segments()

    def _change(self, command: str, *args: str) -> str:
        """An lvm command that changes LVs: the cached segment maps are dropped once it ran (or failed)."""
        try:
            return self.lvm.run(command, *args)
        finally:
            self._forget_segments()

    def _wrap(self, name: str, raw: RawLv, rows: List[Dict[str, str]], *, new: bool) -> Backing:
        if self.is_vhd(name):
            return self._vhd_volume(raw, new=new)
        size = raw.size()
        for tag in tags_of(rows[0]):
            if tag.startswith(SIZE_TAG):
                size = int(tag[len(SIZE_TAG):])
        return RawVolume(raw, 0 if new else size, extent_size=self.extent_size,
                         on_size=lambda n: self._set_size_tag(name, n))

    def _vhd_volume(self, raw: RawLv, *, new: bool = False) -> VhdVolume:
        return VhdVolume(raw, extent_size=self.extent_size, thick=self.provisioning == "thick",
                         logical=0 if new else None)

    def _open_vhd(self, name: str) -> VhdVolume:
        """VHD volume `name`, writable, for inflating or deflating it."""
        return self._vhd_volume(self._open_raw(name, True))

    def _set_size_tag(self, name: str, size: int) -> None:
        rows = self._all_segments().get(name) or self.lvm.lvs(["lv_tags"], self._lv(name))
        old = [t for t in tags_of(rows[0]) if t.startswith(SIZE_TAG)] if rows else []
        args: List[str] = []
        for t in old:
            args += ["--deltag", t]
        self._forget_segments()
        self._change("lvchange", *args, "--addtag", f"{SIZE_TAG}{size}", self._lv(name))

    def create_volume(self, name: str, size: int = 0) -> Backing:
        lv_size = raw_lv_size(size, self.extent_size)
        self._forget_segments()
        tags = [] if self.is_vhd(name) else ["--addtag", f"{SIZE_TAG}{size}"]
        self._change("lvcreate", "-an", "-Zn", "-Wn", "-y", "-L", size_arg(lv_size), "-n", name, *tags,
                     self._need_vg())
        try:
            rows = self._segments(name)
            vol = self._wrap(name, self._open_raw(name, True, rows), rows, new=True)
            if size:
                vol.resize(size)  # zero-filled, as the protocol promises (extents are never zeroed by lvm)
            return vol
        except BaseException:
            self.remove_volume(name)
            raise

    def open_volume(self, name: str, *, writable: bool = False) -> Backing:
        rows = self._segments(name)
        return self._wrap(name, self._open_raw(name, writable, rows), rows, new=False)

    def volume_exists(self, name: str) -> bool:
        return name in self.list_volumes()

    def resize_volume(self, name: str, size: int) -> None:
        if not self.is_vhd(name):
            self._refuse_if_a_block_device(name)
        with self.open_volume(name, writable=True) as vol:
            vol.resize(size)

    def _refuse_if_a_block_device(self, name: str) -> None:
        """A raw volume attached on this host is handed out as a loop device over its PV region, made with the
        volume's size at the time (and a grown LV may not even stay contiguous): resizing under it would leave the
        consumer on the old region. Refused, typed, until the datapath is detached."""
        if not isinstance(self.access, SegmentMapAccess):
            return  # pragma: no cover - kernel path: the LV's own device node follows lvresize
        region = self.raw_region(name)
        if region is None:
            return
        from smapi.datapath import blockdev

        devices = blockdev.devices_over(run_dir(), region[0], region[1])
        if devices:
            raise Backend_error.classic(
                "VDIInUse", f"raw volume {name} is attached as block device {', '.join(devices)}, which keeps the "
                            "size it was made with: detach the VDI before resizing it")

    def rename_volume(self, old: str, new: str) -> None:
        # lvrename cannot replace: remove the target first. A crash in between leaves only `old`, which the
        # engine's journal replays the rename from (it checks for `old`, not `new`).
        if self.volume_exists(new):
            self.remove_volume(new)
        if self.is_vhd(old):
            # A renamed VHD is a leaf becoming a snapshot's base (or a rebuilt leaf taking a VDI's place): give
            # back its unused extents *before* the engine creates the new leaf, so a thick snapshot needs room
            # for one inflated leaf, not two (LVHD's order: deflate the base, then inflate the new leaf).
            # A leaf that stays writable is inflated again by its next writable flush.
            with self._open_vhd(old) as vol:
                vol.deflate()
        self.lvm.run("lvrename", self._need_vg(), old, new)  # on failure the cache is stale: see below
        cache = self._seg_cache
        if cache is not None and old in cache:
            cache[new] = cache.pop(old)  # same extents under a new name: no need to ask lvm again
        else:
            self._forget_segments()

    def remove_volume(self, name: str) -> None:
        try:
            self.lvm.run("lvremove", "-f", self._lv(name))
        except Backend_error as e:
            self._forget_segments()
            if not _missing_lv(e):
                raise
        if self._seg_cache is not None:
            self._seg_cache.pop(name, None)
        self.access.release(name)

    def list_volumes(self) -> List[str]:
        return sorted(name for name in self._all_segments() if name not in RESERVED_LVS)

    def refresh(self) -> None:
        self._forget_segments()  # segment maps are read once per verb; a long-lived handle outlives many verbs

    def volume_sizes(self) -> Dict[str, int]:
        return {name: int(rows[0]["lv_size"]) for name, rows in self._all_segments().items()}

    def volume_utilisation(self, name: str) -> int:
        rows = self._all_segments().get(name)
        return int(rows[0]["lv_size"]) if rows else 0

    def volume_url(self, name: str) -> str:
        return f"lvm://{self._need_vg()}/{name}"

    def volume_path(self, name: str) -> str:
        return self.access.path(name)

    def resolver(self) -> ParentResolver:
        return LvResolver(self)

    # -- the datapath (see smapi.drivers.lvm.serving) -------------------------------------------------------
    def datapath_image(self, name: str, fmt: str) -> ImageSpec:
        """An opener ImageSpec: the server reopens the VG as this process sees it (`serving.open_for_datapath`),
        told what this process already knows so that it starts fast."""
        from smapi.datapath.model import ImageSpec

        args: Dict[str, Any] = {
            "devices": list(self.devices), "conf_dir": self.lvm.config_dir, "vg": self._need_vg(),
            "sr": self.config.sr, "provisioning": self.provisioning, "extent_size": self.extent_size, "volume": name,
        }
        block: Optional[Tuple[str, int, int]] = None
        if isinstance(self.access, SegmentMapAccess):
            args["pe_start"] = self._pe_starts()
            if fmt == "raw":
                block = self.raw_region(name)
        return ImageSpec.opened_by(fmt, OPENER, args, description=self.volume_url(name), block=block)

    def raw_region(self, name: str) -> Optional[Tuple[str, int, int]]:
        """(PV, byte offset, size) of a raw volume lying in one contiguous run of one PV, else None."""
        from smapi.drivers.lvm.segmap import build_map

        access = self.access
        if not isinstance(access, SegmentMapAccess):
            return None  # pragma: no cover - kernel path: the LV's own device node serves
        rows = self._segments(name)
        extents = build_map(rows, self._pe_starts(), self.extent_size)
        if len(extents) != 1:
            return None
        size = extents[0].length
        for tag in tags_of(rows[0]):
            if tag.startswith(SIZE_TAG):
                size = int(tag[len(SIZE_TAG):])
        return extents[0].pv, extents[0].pv_offset, size

    def prepares_writers(self) -> bool:
        return self.provisioning == "thin"

    def writer_needs_preparation(self, name: str, fmt: str) -> bool:
        # Thin VHD leaves grow on demand in the verb process; a server must never need lvm: inflate it first.
        return fmt == "vhd" and self.provisioning == "thin"

    def prepare_writer(self, name: str, fmt: str) -> None:
        if self.writer_needs_preparation(name, fmt):
            with self._open_vhd(name) as vol:
                vol.inflate()
            self._forget_segments()

    def finish_writer(self, name: str, fmt: str) -> None:
        if self.writer_needs_preparation(name, fmt):
            try:
                vol = self._open_vhd(name)
            except FileNotFoundError:
                return  # removed since (a crash replay after destroy): nothing to give back
            with vol:
                vol.deflate()
            self._forget_segments()

    # -- metadata documents -------------------------------------------------------------------------------------
    def _mgt(self) -> MgtStore:
        def open_mgt(writable: bool) -> Backing:
            if not isinstance(self.access, SegmentMapAccess):
                return self.access.open(MGT_LV, writable=writable)  # pragma: no cover - kernel path
            if self._mgt_extents is None:  # MGT never changes size: one segment lookup per substrate
                from smapi.drivers.lvm.segmap import build_map

                rows = self._all_segments().get(MGT_LV)
                if not rows:
                    raise Backend_error.classic("SRUnavailable", f"volume group {self.vg} has no {MGT_LV} volume")
                self._mgt_extents = build_map(rows, self._pe_starts(), self.extent_size)
            from smapi.drivers.lvm.segmap import SegmentMapBacking

            return SegmentMapBacking(f"{self.vg}/{MGT_LV}", self._mgt_extents, writable=writable,
                                     uncached=self.uncached)

        return MgtStore(open_mgt)

    def load_document(self, key: str) -> Optional[Dict[str, Any]]:
        try:
            if self._mgt_extents is None and MGT_LV not in self._all_segments():
                return None  # a create that died before making MGT
            docs = self._mgt().load()
        except Backend_error as e:
            if _missing_lv(e):
                return None
            raise
        return docs.get(key)

    def store_document(self, key: str, value: Dict[str, Any]) -> None:
        with self.lock("mgt").hold():
            self._mgt().update(lambda docs: docs.__setitem__(key, value))

    def remove_document(self, key: str) -> None:
        with self.lock("mgt").hold():
            self._mgt().update(lambda docs: docs.pop(key, None))

    def list_documents(self, prefix: str) -> List[str]:
        return sorted(k for k in self._mgt().load() if k.startswith(prefix))

    # -- locks --------------------------------------------------------------------------------------------------
    def _lock_dir(self) -> str:
        root = os.environ.get(LOCK_ENV) or (os.path.join(run_dir(), "lvm", "locks") if os.environ.get(RUN_ENV)
                                            else DEFAULT_LOCK_DIR)
        return os.path.join(root, self._need_vg())

    def lock(self, name: str) -> FileLock:
        return FileLock(os.path.join(self._lock_dir(), check_component("lock", name)))
