"""VDI create, destroy and resize, and the single-document edits (names, flags, content id, sm_config)."""

from __future__ import annotations

from typing import Any, Callable, Dict

from smapi.interface.errors import Backend_error
from smapi.sr import vdi_servers
from smapi.sr.engine import DERIVED_SM_CONFIG, Engine, new_uuid
from smapi.sr.errors import mapped_errors, no_space
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.names import check_text, check_texts, is_name
from smapi.sr.records import USER_FIELDS, VdiRecord
from smapi.sr.reserve import freeing_space
from smapi.sr.undo import shrink_back, undone_on_failure
from smapi.vhd import DEFAULT_BLOCK_SIZE, MAX_VIRTUAL_SIZE, info
from smapi.vhd import resize as vhd_resize
from smapi.vhd.create import create_sparse_on

RAW_TYPES = ("raw", "aio")
SECTOR = 512


def requested_format(sm_config: Dict[str, str]) -> str:
    """VHD unless sm_config asks for raw (`type` as xe vdi-create sm-config:type=raw, or sm's `vdi_type`)."""
    wanted = sm_config.get("type") or sm_config.get("vdi_type") or "vhd"
    if wanted in RAW_TYPES:
        return "raw"
    if wanted != "vhd":
        raise Backend_error.classic("VDIType", f"sm_config type {wanted!r}: this SR stores vhd or raw")
    return "vhd"


def user_fields(info_in: Dict[str, Any]) -> Dict[str, Any]:
    fields = {k: check_text(f"vdi_info.{k}", info_in[k]) for k in USER_FIELDS if k in info_in}
    fields["sm_config"] = {k: v for k, v in dict(info_in.get("sm_config") or {}).items()
                           if k not in DERIVED_SM_CONFIG}
    check_texts("vdi_info.sm_config", fields["sm_config"])
    return fields


def rounded_size(fmt: str, size: int) -> int:
    if size < 0:
        raise Backend_error.classic("VDISize", f"virtual_size {size} is negative")
    if fmt == "raw":
        return (size + 511) // 512 * 512
    if size > MAX_VIRTUAL_SIZE:
        raise Backend_error.classic("VDISize", f"virtual_size {size} exceeds the VHD maximum {MAX_VIRTUAL_SIZE}")
    # Whole sectors, not blktap's whole 2 MiB blocks: an imported disk keeps its exact size through export.
    # A VHD cannot be zero-sized, so an empty VDI gets one sector.
    return max(SECTOR, (size + SECTOR - 1) // SECTOR * SECTOR)


def growth_target(rec: VdiRecord, new_size: int) -> int:
    """The size a resize to `new_size` produces: smapi.vhd grows a block-aligned image in whole blocks, so a
    repeated request (already rounded up last time) is recognised as a no-op rather than as a shrink."""
    target = rounded_size(rec.format, new_size)
    if rec.format == "vhd" and rec.virtual_size % DEFAULT_BLOCK_SIZE == 0:
        target = (target + DEFAULT_BLOCK_SIZE - 1) // DEFAULT_BLOCK_SIZE * DEFAULT_BLOCK_SIZE
    return target


def create(engine: Engine, info_in: Dict[str, Any]) -> Dict[str, Any]:
    fields = user_fields(info_in)
    fmt = requested_format(dict(info_in.get("sm_config") or {}))
    size = rounded_size(fmt, int(info_in["virtual_size"]))
    wanted = info_in.get("vdi") or ""
    with engine.locked(what="VDI.create"):
        doc = engine.load()
        uuid = wanted if wanted and is_name(wanted) and wanted not in doc.vdis else new_uuid()
        if fmt == "raw" and size > engine.free_space(doc):
            # Raw images are provisioned in full (sm's rule), so they must fit; VHDs are thin.
            raise no_space(f"a raw VDI of {size} bytes needs that much free space; "
                           f"{engine.free_space(doc)} bytes are free")
        volume = engine.volume_of(uuid, fmt)
        entry = engine.journal.begin("create", vdi=uuid, volume=volume)
        with undone_on_failure(engine, entry):
            with mapped_errors(f"creating VDI {uuid}"):
                backing = engine.substrate.create_volume(volume, size if fmt == "raw" else 0)
                try:
                    if fmt == "vhd":
                        create_sparse_on(backing, size, round_to_block=False)
                        size = info(backing, count_blocks=False).virtual_size
                    backing.flush()
                finally:
                    backing.close()
            fault_point("create.volume")
            rec = VdiRecord(uuid=uuid, format=fmt, volume=volume, virtual_size=size, **fields)
            doc.vdis[uuid] = rec
            engine.save(doc)
        engine.journal.end(entry)
        return engine.info(rec)


@REPLAYERS.register("create", "destroy")
def _replay_create_or_destroy(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """The record is the commit: present -> the volume is kept; absent -> it goes (an uncommitted destroy leaves
    the VDI as it was; a committed one lacks only the unlink)."""
    if entry.data["vdi"] not in engine.load().vdis:
        engine.substrate.remove_volume(entry.data["volume"])
    engine.journal.end(entry)
    return True


def destroy(engine: Engine, vdi: str) -> None:
    # Destroying is how a full SR gets space back: it may use the SR's space reserve.
    freeing_space(engine.substrate, lambda: _destroy(engine, vdi))
    engine.after_change()


def _destroy(engine: Engine, vdi: str) -> None:
    with engine.locked(vdi, what="VDI.destroy"):
        doc = engine.load()
        rec = engine.visible(doc, vdi)
        busy = engine.run.dp_states(engine.sr, vdi)
        if busy:
            raise Backend_error.classic(
                "VDIInUse", f"VDI {vdi} is attached on this host ({busy}); detach it (VDI.detach) first")
        remove_record(engine, rec.uuid)
        engine.vdi_lock(vdi).discard()  # held exclusively here; without this, lock files pile up forever


def remove_record(engine: Engine, uuid: str) -> None:
    """Journaled removal of one image (a VDI or a garbage base copy); the caller holds the SR lock."""
    doc = engine.load()
    rec = doc.vdis[uuid]
    entry = engine.journal.begin("destroy", vdi=uuid, volume=rec.volume)
    fault_point("destroy.begin")
    with undone_on_failure(engine, entry):
        del doc.vdis[uuid]
        engine.save(doc)
    fault_point("destroy.committed")
    with mapped_errors(f"removing volume {rec.volume}"):
        engine.substrate.remove_volume(rec.volume)
    fault_point("destroy.removed")
    engine.journal.end(entry)


def resize(engine: Engine, vdi: str, new_size: int) -> int:
    # A running server reports the old size until it reopens the image: pause it around the resize.
    with engine.locked(vdi, what="VDI.resize"), vdi_servers.paused(engine, vdi):
        doc = engine.load()
        rec = engine.visible(doc, vdi)
        target = growth_target(rec, new_size)
        if target < rec.virtual_size:
            raise Backend_error.classic(
                "VDISize", f"shrinking VDI {vdi} from {rec.virtual_size} to {new_size} bytes is not supported "
                           f"(data past the new end would be lost); copy the data to a smaller VDI instead")
        if target == rec.virtual_size:
            return rec.virtual_size  # already that big once rounded: repeating a resize is harmless
        if rec.format == "raw" and target - rec.virtual_size > engine.free_space(doc):
            raise no_space(f"growing raw VDI {vdi} by {target - rec.virtual_size} bytes")
        entry = engine.journal.begin("resize", vdi=vdi, old=rec.virtual_size, new=target)
        fault_point("resize.begin")
        with undone_on_failure(engine, entry):  # a failed resize leaves the old size, now and at every replay
            with mapped_errors(f"resizing VDI {vdi}"):
                if rec.format == "raw":
                    engine.substrate.resize_volume(rec.volume, target)
                    size = target
                else:
                    backing = engine.substrate.open_volume(rec.volume, writable=True)
                    try:
                        size = vhd_resize(backing, target)
                    finally:
                        backing.close()
            fault_point("resize.grown")
            rec.virtual_size = size
            engine.save(doc)
        fault_point("resize.committed")
        engine.journal.end(entry)
        return size


@REPLAYERS.register("resize")
def _replay_resize(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """The document is the commit: still the old size -> the image goes back to it (`undo.shrink_back`)."""
    rec = engine.load().vdis.get(entry.data["vdi"])
    if rec is not None and rec.virtual_size == entry.data["old"]:
        with mapped_errors(f"undoing the resize of VDI {rec.uuid}"):
            shrink_back(engine, rec, entry.data["old"])
    engine.journal.end(entry)
    return True


def edit(engine: Engine, vdi: str, change: Callable[[VdiRecord], None], what: str) -> None:
    """One atomic read-modify-write of a VDI record."""
    with engine.locked(what=what):
        doc = engine.load()
        change(engine.visible(doc, vdi))
        engine.save(doc)
