"""Snapshot, clone, compose and reset-on-boot: the verbs that grow or rearrange the VDI tree.

Each runs under the locks of the VDIs it touches plus the SR lock, journals its intent first, calls a fault
point after each step, and commits the SR document as its last step (see `smapi.sr.journal` for the replay rules).
"""

from __future__ import annotations

from typing import Any, Dict

from smapi.interface.errors import Backend_error
from smapi.interface.storage import EPOCH
from smapi.sr import cbtlog, vdi_servers
from smapi.sr.chains import (
    commit_split,
    copy_own_sectors,
    copy_raw,
    hide,
    make_child,
    reparent,
    split_leaf,
    undo_split,
)
from smapi.sr.engine import Engine, new_uuid, now_iso
from smapi.sr.errors import chain_too_long, mapped_errors, no_space
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.lifecycle import user_fields
from smapi.sr.records import SrDocument, VdiRecord
from smapi.sr.undo import undone_on_failure
from smapi.vhd import MAX_CHAIN_DEPTH
from smapi.vhd import reset as vhd_reset


def _check_depth(doc: SrDocument, vdi: str, extra: int = 1) -> None:
    depth = doc.depth(vdi)
    if depth + extra > MAX_CHAIN_DEPTH:
        raise chain_too_long(vdi, depth)


def snapshot_like(engine: Engine, info_in: Dict[str, Any], kind: str) -> Dict[str, Any]:
    """VDI.snapshot (kind "snapshot") and VDI.clone (kind "clone") of `info_in["vdi"]`."""
    src = info_in["vdi"]
    fields = user_fields(info_in)
    if kind == "snapshot":
        given = info_in.get("snapshot_time") or EPOCH
        fields.update(is_a_snapshot=True, snapshot_of=src, snapshot_time=given if given != EPOCH else now_iso())
    else:
        fields.update(is_a_snapshot=False, snapshot_of="", snapshot_time=EPOCH)
    # A running server holds the leaf that the split renames to the base copy: pause it around the split.
    with engine.locked(src, what=f"VDI.{kind}"), vdi_servers.paused(engine, src):
        doc = engine.load()
        rec = engine.visible(doc, src)
        new = new_uuid()
        if rec.format == "raw":
            new_rec = _full_raw_copy(engine, doc, rec, new, fields, kind)
        else:
            _check_depth(doc, src)
            base = new_uuid()
            base_volume = engine.volume_of(base, "vhd")
            new_volume = engine.volume_of(new, "vhd")
            entry = engine.journal.begin(kind, vdi=src, leaf_volume=rec.volume, base=base,
                                         base_volume=base_volume, new=new, new_volume=new_volume)
            cbtlog.before_freeze(engine, rec, new if kind == "snapshot" else None)
            fault_point(f"{kind}.begin")
            with undone_on_failure(engine, entry):
                with mapped_errors(f"VDI.{kind} of {src}"):
                    split_leaf(engine, rec.volume, base_volume, kind)
                    make_child(engine, new_volume, base_volume)
                fault_point(f"{kind}.child")
                commit_split(doc, rec, base, base_volume)
                new_rec = VdiRecord(uuid=new, format="vhd", volume=new_volume, virtual_size=rec.virtual_size,
                                    parent=base, cbt_enabled=rec.cbt_enabled and kind == "snapshot", **fields)
                doc.vdis[new] = new_rec
                engine.save(doc)
            fault_point(f"{kind}.committed")
            engine.journal.end(entry)
        result = engine.info(new_rec)
    engine.after_change()
    return result


def _full_raw_copy(engine: Engine, doc: SrDocument, rec: VdiRecord, new: str, fields: Dict[str, Any],
                   kind: str) -> VdiRecord:
    """A raw image has no differencing children: its snapshot or clone is a full (sparse) copy."""
    if rec.virtual_size > engine.free_space(doc):
        raise no_space(f"a {kind} of raw VDI {rec.uuid} is a full copy of {rec.virtual_size} bytes")
    volume = engine.volume_of(new, "raw")
    entry = engine.journal.begin("create", vdi=new, volume=volume)
    with undone_on_failure(engine, entry):
        with mapped_errors(f"copying raw VDI {rec.uuid}"):
            source = engine.substrate.open_volume(rec.volume)
            try:
                target = engine.substrate.create_volume(volume, rec.virtual_size)
                try:
                    copy_raw(source, target, rec.virtual_size)
                finally:
                    target.close()
            finally:
                source.close()
        fault_point(f"{kind}.copied")
        new_rec = VdiRecord(uuid=new, format="raw", volume=volume, virtual_size=rec.virtual_size, **fields)
        doc.vdis[new] = new_rec
        engine.save(doc)
    engine.journal.end(entry)
    return new_rec


def set_persistent(engine: Engine, vdi: str, persistent: bool) -> None:
    """A VDI made non-persistent gets an empty leaf over its current content (xapi's clone-and-destroy), which
    `epoch_begin` then resets: every VM start sees the content of the moment it was made non-persistent."""
    with engine.locked(vdi, what="VDI.set_persistent"), vdi_servers.paused(engine, vdi):
        doc = engine.load()
        rec = engine.visible(doc, vdi)
        if persistent or not rec.persistent:
            rec.persistent = persistent
            engine.save(doc)
            return
        if rec.format != "vhd":
            raise Backend_error.classic("VDIType", f"VDI {vdi} is raw; only VHD VDIs can be reset on boot")
        _check_depth(doc, vdi)
        base = new_uuid()
        base_volume = engine.volume_of(base, "vhd")
        entry = engine.journal.begin("persist", vdi=vdi, leaf_volume=rec.volume, base=base,
                                     base_volume=base_volume)
        cbtlog.before_freeze(engine, rec)
        with undone_on_failure(engine, entry):
            with mapped_errors(f"making VDI {vdi} non-persistent"):
                split_leaf(engine, rec.volume, base_volume, "persist")
            commit_split(doc, rec, base, base_volume)
            rec.persistent = False
            engine.save(doc)
        fault_point("persist.committed")
        engine.journal.end(entry)
    engine.after_change()


def epoch_begin(engine: Engine, vdi: str) -> None:
    with engine.locked(vdi, what="VDI.epoch_begin"):
        rec = engine.visible(engine.load(), vdi)
        if rec.persistent or rec.format != "vhd" or not rec.parent:
            return
        # Resetting drops what the running consumer wrote under it: only before activation (a VM start).
        vdi_servers.refuse_if_active(engine, vdi, "resetting a non-persistent VDI")
        with mapped_errors(f"resetting non-persistent VDI {vdi}"):
            backing = engine.substrate.open_volume(rec.volume, writable=True)
            try:
                vhd_reset(backing)
            finally:
                backing.close()


def compose(engine: Engine, vdi1: str, vdi2: str) -> None:
    """Layer vdi2's own data on top of vdi1's content, modifying vdi2 only.

    vdi1 is split first (its content becomes a hidden base copy B and vdi1 an empty leaf over B, so vdi1 stays
    usable and its later writes cannot leak into vdi2); then vdi2's own image is re-parented onto B. A vdi2 with
    no parent (a dynamic image) cannot be re-parented in place: its sectors are copied into a new child of B
    that then replaces it (vdi2's own image is kept aside until the commit, so every step can be undone).
    """
    with engine.locked(vdi1, vdi2, what="VDI.compose"), vdi_servers.paused(engine, vdi1, vdi2):
        doc = engine.load()
        r1, r2 = engine.visible(doc, vdi1), engine.visible(doc, vdi2)
        if vdi1 == vdi2:
            raise Backend_error.classic("VDIUnavailable", f"cannot compose VDI {vdi1} with itself")
        for rec in (r1, r2):
            if rec.format != "vhd":
                raise Backend_error.classic("VDIType", f"VDI {rec.uuid} is raw; compose needs VHD VDIs")
        if r2.cbt_enabled:
            raise Backend_error.classic("VDIType", f"VDI {vdi2} has changed-block tracking on; compose would "
                                                   f"change its content under its CBT log: disable_cbt first")
        # vdi2 ends up one image below B, which takes vdi1's place in its chain.
        _check_depth(doc, vdi1)
        base = new_uuid()
        base_volume = engine.volume_of(base, "vhd")
        rebase_volume = None if r2.parent else engine.volume_of(new_uuid(), "vhd")
        entry = engine.journal.begin(
            "compose", vdi1=vdi1, vdi2=vdi2, leaf_volume=r1.volume, base=base, base_volume=base_volume,
            vdi2_volume=r2.volume, rebase_volume=rebase_volume, step="split",
            vdi2_parent_volume=doc.vdis[r2.parent].volume if r2.parent else None,
            vdi2_aside=engine.volume_of(new_uuid(), "vhd") if rebase_volume else None)
        cbtlog.before_freeze(engine, r1)
        fault_point("compose.begin")
        with undone_on_failure(engine, entry):  # a failed compose leaves both VDIs as they were
            with mapped_errors(f"VDI.compose {vdi1} {vdi2}"):
                split_leaf(engine, r1.volume, base_volume, "compose")
                if rebase_volume:
                    make_child(engine, rebase_volume, base_volume)
                    copy_own_sectors(engine, r2.volume, rebase_volume)
                    fault_point("compose.copied")
                engine.journal.update(entry, step="reparent")
                finish_compose_images(engine, entry.data)
            fault_point("compose.reparented")
            commit_compose(doc, entry.data)
            engine.save(doc)
        fault_point("compose.committed")
        _drop_aside(engine, entry.data)
        engine.journal.end(entry)
    engine.after_change()


def finish_compose_images(engine: Engine, data: Dict[str, Any]) -> None:
    """The re-parent step of compose; idempotent. A rebased vdi2's own image is renamed aside, not replaced."""
    sub = engine.substrate
    rebase, aside = data.get("rebase_volume"), data.get("vdi2_aside")
    if rebase:
        if sub.volume_exists(rebase):
            if aside and not sub.volume_exists(aside):
                sub.rename_volume(data["vdi2_volume"], aside)
            sub.rename_volume(rebase, data["vdi2_volume"])
    else:
        reparent(engine, data["vdi2_volume"], data["base_volume"])


def commit_compose(doc: SrDocument, data: Dict[str, Any]) -> None:
    r1, r2 = doc.vdis[data["vdi1"]], doc.vdis[data["vdi2"]]
    commit_split(doc, r1, data["base"], data["base_volume"])
    r2.parent = data["base"]


def _drop_aside(engine: Engine, data: Dict[str, Any]) -> None:
    if data.get("vdi2_aside"):
        engine.substrate.remove_volume(data["vdi2_aside"])


def _undo_compose_images(engine: Engine, data: Dict[str, Any]) -> None:
    """vdi2 gets its own image (and parent) back, then vdi1 its data; idempotent."""
    sub = engine.substrate
    rebase, aside = data.get("rebase_volume"), data.get("vdi2_aside")
    if rebase:
        if aside and sub.volume_exists(aside):
            sub.rename_volume(aside, data["vdi2_volume"])  # replaces the landed rebase, if it got that far
        sub.remove_volume(rebase)
    elif data.get("step") == "reparent" and data.get("vdi2_parent_volume"):
        reparent(engine, data["vdi2_volume"], data["vdi2_parent_volume"])
    undo_split(engine, data["leaf_volume"], data["base_volume"])


# ------------------------------------------------------------------------------------------------ replay
@REPLAYERS.register("snapshot", "clone", "persist")
def _replay_split(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Base recorded -> done (re-hide it); else remove the new child and un-split the leaf."""
    d = entry.data
    if d["base"] in engine.load().vdis:
        hide(engine, d["base_volume"])
    else:
        if d.get("new_volume"):
            engine.substrate.remove_volume(d["new_volume"])
        undo_split(engine, d["leaf_volume"], d["base_volume"])
    engine.journal.end(entry)
    return True


@REPLAYERS.register("compose")
def _replay_compose(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Base recorded -> done (vdi2's old image aside goes); else undone: vdi2 and vdi1 as before.

    (An entry of an older version, without `vdi2_parent_volume`, cannot undo its re-parent step: it is finished.)"""
    d = entry.data
    doc = engine.load()
    if d["base"] in doc.vdis:
        _drop_aside(engine, d)
    elif d.get("step") == "reparent" and "vdi2_parent_volume" not in d:
        hide(engine, d["base_volume"])
        finish_compose_images(engine, d)
        commit_compose(doc, d)
        engine.save(doc)
    else:
        _undo_compose_images(engine, d)
    engine.journal.end(entry)
    return True
