"""The SR engine: one attached SR on one substrate, and the state every verb shares.

`Engine` holds the substrate, the SR document accessors, the locks and the host-local run state; the verbs live
in small modules (`lifecycle`, `snapshots`, `attach`, `gc`, `access`, `copying`, ...) that take an engine.
Those modules import this one, so the engine never imports them: the few verb functions it calls itself (journal
replay, collection, scheduling a collection, data handles) are handed to it as `EngineVerbs` by whoever builds
it (`smapi.sr.assembly.build_engine`).

Locking (all advisory flock files on the substrate, so every process and host using the SR agrees):

* `vdi-<uuid>`: held exclusively by a verb that changes which volume holds a VDI's data (snapshot, clone,
  compose, resize, destroy, reset) and by a writable data handle; shared by a read-only data handle.
* `sr`: held exclusively around every read-modify-write of the SR document and for the whole of every short
  multi-step verb, so a journal entry seen by someone holding `sr` belongs to a dead process.
* `gc`: one garbage collector per SR; its coalesce journal is replayed only by whoever holds `gc`.

Order: `gc` -> `vdi-*` (sorted) -> `sr`. Nobody waits for a lock earlier in the order while holding a later one.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional

from smapi.common.calllog import note
from smapi.interface.errors import Activated_on_another_host, Backend_error, Vdi_does_not_exist
from smapi.interface.storage import vdi_info as VDI_INFO
from smapi.sr.errors import is_no_space, mapped_errors
from smapi.sr.journal import Journal, Replayer, replay_pending
from smapi.sr.locks import FileLock, hold_all
from smapi.sr.names import check_sr, check_vdi
from smapi.sr.records import SrDocument, VdiRecord
from smapi.sr.runstate import RunState
from smapi.sr.substrate import Substrate

if TYPE_CHECKING:
    from smapi.sr.access import VdiHandle

#: classic sm_config names for the image type
VDI_TYPES = {"vhd": "vhd", "raw": "aio"}
#: sm_config keys the engine computes; callers' values for them are not stored
DERIVED_SM_CONFIG = ("vdi_type", "vhd-parent", "cbt_enabled")


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def now_iso() -> str:
    """snapshot_time in the interface's form (xapi's RFC 3339 basic format)."""
    return time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class EngineVerbs:
    """The verb functions the engine calls itself, given to it by whoever builds it (see the module docstring)."""

    #: journal replay by op name (`smapi.sr.journal.REPLAYERS`)
    replayers: Mapping[str, Replayer]
    #: collect garbage and coalesce (`gc.collect`); `wait`: for a running collector, else return at once
    collect: Callable[[Engine, bool], Dict[str, int]]
    #: let the collector look at the SR after a change (`background.schedule_gc`)
    schedule_gc: Callable[[Engine], None]
    #: a data handle (`access.open_vdi`): (engine, vdi, writable)
    open_vdi: Callable[[Engine, str, bool], VdiHandle]


class Engine:
    def __init__(self, substrate: Substrate, sr: str, *, verbs: EngineVerbs, driver_ref: str = "",
                 device_config: Optional[Dict[str, str]] = None) -> None:
        self.substrate = substrate
        self.verbs = verbs
        self.sr = check_sr(sr)  # it names host-local files (run state, locks): refused before any is made
        self.driver_ref = driver_ref
        self.device_config = dict(device_config or substrate.describe())
        self.journal = Journal(substrate)

    # -- host-local state ---------------------------------------------------------------------------------------
    @property
    def run(self) -> RunState:
        # Constructed on use: SMAPI_RUN_DIR is read per call, so tests can isolate themselves.
        return RunState()

    # -- locks --------------------------------------------------------------------------------------------------
    def sr_lock(self) -> FileLock:
        return self.substrate.lock("sr")

    def gc_lock(self) -> FileLock:
        return self.substrate.lock("gc")

    def vdi_lock(self, vdi: str) -> FileLock:
        # Taken before the VDI is looked up: a caller's name must not reach the lock file's path unchecked.
        return self.substrate.lock("vdi-" + check_vdi(vdi))

    @contextmanager
    def locked(self, *vdis: str, what: str = "operation", reading: bool = False) -> Iterator[None]:
        """VDI locks (sorted) then the SR lock, with lock timeouts reported as typed errors; `reading`: the verb
        only reads (see `recover`)."""
        # covered(): taken just before the SR lock and released with it (a shared SR checks them under its lease)
        with mapped_errors(what), hold_all([self.vdi_lock(v).covered() for v in vdis]), self.sr_lock().hold():
            # What the substrate cached about its volumes may predate the lock (a long-lived engine): read again.
            self.substrate.refresh()
            # A process that died half-way left its journal: repair before looking at the SR.
            self.recover(reading=reading)
            for vdi in vdis:  # a shared SR: a verb on a VDI another host serves must run there
                elsewhere = self.substrate.active_elsewhere(vdi)
                if elsewhere is not None:
                    raise Activated_on_another_host(elsewhere)
            yield

    # -- the SR document ---------------------------------------------------------------------------------------
    def load(self) -> SrDocument:
        raw = self.substrate.load_document(Substrate.SR_DOCUMENT)
        if raw is None:
            raise Backend_error.classic("SRUnavailable", f"no SR document in {self.device_config}")
        return SrDocument.from_dict(raw)

    def save(self, doc: SrDocument) -> None:
        self.substrate.store_document(Substrate.SR_DOCUMENT, doc.to_dict())

    @staticmethod
    def visible(doc: SrDocument, vdi: str) -> VdiRecord:
        """A VDI callers may name: hidden base copies are internal and do not exist for them."""
        rec = doc.vdis.get(check_vdi(vdi))
        if rec is None or rec.hidden:
            raise Vdi_does_not_exist(vdi)
        return rec

    # -- vdi_info -------------------------------------------------------------------------------------------------
    def info(self, rec: VdiRecord) -> Dict[str, Any]:
        sm_config = dict(rec.sm_config)
        # The parent (a hidden base copy) is not named: callers cannot use it, and a snapshot would change the
        # source's record for nothing.
        sm_config["vdi_type"] = VDI_TYPES[rec.format]
        if rec.cbt_enabled:
            # seed 001's vdi_info has no cbt_enabled member (today's has): sm_config carries it
            sm_config["cbt_enabled"] = "true"
        return VDI_INFO.make(
            vdi=rec.uuid, content_id=rec.content_id, name_label=rec.name_label,
            name_description=rec.name_description, ty=rec.ty, metadata_of_pool=rec.metadata_of_pool,
            is_a_snapshot=rec.is_a_snapshot, snapshot_time=rec.snapshot_time, snapshot_of=rec.snapshot_of,
            read_only=rec.read_only, virtual_size=rec.virtual_size,
            physical_utilisation=self.substrate.volume_utilisation(rec.volume), persistent=rec.persistent,
            sm_config=sm_config,
        )

    def sr_info(self, doc: Optional[SrDocument] = None) -> Dict[str, Any]:
        doc = doc or self.load()
        total, free = self.substrate.space()
        quota = int(doc.options.get("physical_size", "0") or 0)
        if quota > 0:
            used = sum(self.substrate.volume_utilisation(r.volume) for r in doc.vdis.values())
            total, free = quota, max(0, min(free, quota - used))
        return {"sr_uuid": doc.uuid, "name_label": doc.name_label, "name_description": doc.name_description,
                "total_space": total, "free_space": free, "clustered": False, "health": "Healthy"}

    def free_space(self, doc: SrDocument) -> int:
        return int(self.sr_info(doc)["free_space"])

    def volume_of(self, uuid: str, fmt: str) -> str:
        return self.substrate.volume_name(uuid, fmt)

    # -- verbs (implemented in the topic modules, handed over as EngineVerbs) ------------------------------------
    def recover(self, *, include_coalesce: bool = False, reading: bool = False) -> List[str]:
        """Replay the journal entries dead processes left (see `smapi.sr.journal`); returns those finished.

        `reading`: for a verb that only reads the SR document and images, a replay that fails for lack of space is
        noted and left for later instead of failing the verb: on a full SR, reads and scans must keep working (the
        document is the commit point, so what it says is consistent)."""
        try:
            return replay_pending(self, self.verbs.replayers, include_coalesce=include_coalesce)
        except (OSError, Backend_error) as e:
            if not (reading and is_no_space(e)):
                raise
            note(f"SR {self.sr}: journal replay postponed, no space left: {e}")
            return []

    def gc(self) -> Dict[str, int]:
        """Collect garbage and coalesce until there is nothing left (waits for a running collector)."""
        return self.verbs.collect(self, True)

    def gc_without_waiting(self) -> Dict[str, int]:
        return self.verbs.collect(self, False)

    def after_change(self) -> None:
        """Let the collector look at the SR after a verb that can create garbage or coalescable chains."""
        self.verbs.schedule_gc(self)

    def open_vdi(self, vdi: str, *, writable: bool = False) -> VdiHandle:
        return self.verbs.open_vdi(self, vdi, writable)
