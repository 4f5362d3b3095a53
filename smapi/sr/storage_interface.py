"""The storage interface implemented on the SR engine: the SR and VDI classes any engine-based driver reuses.

A driver subclasses `EngineDriver`, says how to build its substrate from a device_config, and lists
`EngineSR` / `EngineVDI` (plus its own Query) in `storage`. Every call is self-contained: the SR is found
through the host's run directory, so per-verb and classic executables (one process per call) behave exactly like
a long-running server.
"""

from __future__ import annotations

from typing import Any, Dict, List

from smapi.interface.errors import Backend_error, Does_not_exist
from smapi.interface.skeletons.storage import SR_skeleton, VDI_skeleton
from smapi.sr import attach, cbt, copying, footers, lifecycle, reserve, snapshots, vdi_servers
from smapi.sr.engine import Engine
from smapi.sr.enginedriver import EngineDriver
from smapi.sr.errors import mapped_errors
from smapi.sr.names import check_sr, check_text, check_texts
from smapi.sr.owned import owned_volumes
from smapi.sr.records import SrDocument, VdiRecord
from smapi.sr.runstate import RunState
from smapi.sr.substrate import Substrate
from smapi.sr.sweep import sweep


class _EngineImpl:
    driver: EngineDriver

    def _engine(self, sr: str) -> Engine:
        return self.driver.engine_for(sr)


class EngineSR(_EngineImpl, SR_skeleton):
    def ls(self, dbg: str) -> List[str]:
        return RunState().attached_srs(self.driver.reference())

    def create(self, dbg: str, sr: str, device_config: Dict[str, str], physical_size: int) -> None:
        check_sr(sr)
        sub = self._substrate(device_config)
        with mapped_errors(f"SR.create {sr}"):
            if sub.exists():
                raise Backend_error.classic("SRExists", f"an SR already exists at {sub.describe()}")
            sub.initialise()
            doc = SrDocument(uuid=sr)
            if physical_size > 0:
                doc.options["physical_size"] = str(physical_size)
            sub.store_document(Substrate.SR_DOCUMENT, doc.to_dict())
            reserve.ensure(sub)

    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        sub = self._substrate(device_config)
        if not sub.exists():
            raise Backend_error.classic("SRUnavailable", f"no SR at {sub.describe()}; create it (SR.create)")
        from smapi.sr.assembly import build_engine  # only SR.attach and SR.probe build engines here

        engine = build_engine(sub, sr, driver_ref=self.driver.reference(), device_config=device_config)
        with mapped_errors(f"SR.attach {sr}"):
            found = engine.load().uuid
            if found != sr:
                raise Backend_error.classic("SRUnavailable", f"{sub.describe()} holds SR {found}, not {sr}")
            engine.recover(include_coalesce=True)
            sweep(engine.substrate, engine.load().vdis)
            footers.repair_torn(engine)
            reserve.ensure(engine.substrate)
            # A previous boot's datapath records, and servers a killed verb left behind, go before anyone uses them.
            vdi_servers.at_sr_attach(engine)
        # As the substrate resolved it (an absolute path): later verbs may run in another working directory.
        engine.run.record_attach(sr, self.driver.reference(), self.driver.canonical_config(device_config))

    def detach(self, dbg: str, sr: str) -> None:
        engine = self._engine(sr)
        vdi_servers.release_all(engine)
        engine.run.forget_attach(sr)

    def destroy(self, dbg: str, sr: str) -> None:
        engine = self._engine(sr)
        vdi_servers.release_all(engine)
        # Every VDI goes with the SR (the interface's "destroys"); a running collector is waited for first.
        with mapped_errors(f"SR.destroy {sr}"), engine.gc_lock().hold(), engine.sr_lock().hold():
            engine.substrate.wipe(owned_volumes(engine))
        engine.run.forget_attach(sr)

    def reset(self, dbg: str, sr: str) -> None:
        record = RunState().attached(sr)
        if record is not None:
            vdi_servers.release_all(self._engine(sr))

    def scan(self, dbg: str, sr: str) -> List[Dict[str, Any]]:
        engine = self._engine(sr)
        with mapped_errors(f"SR.scan {sr}"):
            engine.recover(include_coalesce=True, reading=True)
        with engine.locked(what="SR.scan", reading=True):
            doc = engine.load()
            sweep(engine.substrate, doc.vdis)
            return [engine.info(r) for r in sorted(doc.visible(), key=lambda r: r.uuid)]

    def stat(self, dbg: str, sr: str) -> Dict[str, Any]:
        engine = self._engine(sr)
        with mapped_errors(f"SR.stat {sr}"):
            return engine.sr_info()

    def set_name_label(self, dbg: str, sr: str, new_name_label: str) -> None:
        self._edit_sr(sr, "name_label", new_name_label)

    def set_name_description(self, dbg: str, sr: str, new_name_description: str) -> None:
        self._edit_sr(sr, "name_description", new_name_description)

    def probe(self, dbg: str, device_config: Dict[str, str], sm_config: Dict[str, str]) -> Any:
        sub = self._substrate(device_config)
        from smapi.sr.assembly import build_engine

        found = []
        with mapped_errors("SR.probe"):
            for candidate in sub.probe():
                raw = candidate.load_document(Substrate.SR_DOCUMENT) or {}
                doc = SrDocument.from_dict(raw)
                engine = build_engine(candidate, doc.uuid)
                found.append({"configuration": candidate.describe(), "complete": True,
                              "sr": engine.sr_info(doc), "extra_info": {"vdis": str(len(doc.visible()))}})
        return ["Probe", found]

    # -- helpers -------------------------------------------------------------------------------------------------
    def _substrate(self, device_config: Dict[str, str]) -> Substrate:
        return self.driver.make_substrate(device_config)

    def _edit_sr(self, sr: str, field: str, value: str) -> None:
        check_text(f"new_{field}", value)
        engine = self._engine(sr)
        with engine.locked(what=f"SR.set_{field}"):
            doc = engine.load()
            setattr(doc, field, value)
            engine.save(doc)


class EngineVDI(_EngineImpl, VDI_skeleton):
    def create(self, dbg: str, sr: str, vdi_info: Dict[str, Any]) -> Dict[str, Any]:
        return lifecycle.create(self._engine(sr), vdi_info)

    def snapshot(self, dbg: str, sr: str, vdi_info: Dict[str, Any]) -> Dict[str, Any]:
        engine = self._engine(sr)
        cbt.refuse_without_data(engine, str(vdi_info.get("vdi", "")), "VDI.snapshot")
        return snapshots.snapshot_like(engine, vdi_info, "snapshot")

    def clone(self, dbg: str, sr: str, vdi_info: Dict[str, Any]) -> Dict[str, Any]:
        engine = self._engine(sr)
        cbt.refuse_without_data(engine, str(vdi_info.get("vdi", "")), "VDI.clone")
        return snapshots.snapshot_like(engine, vdi_info, "clone")

    def destroy(self, dbg: str, sr: str, vdi: str) -> None:
        engine = self._engine(sr)
        owner = cbt.log_owner(engine, vdi)
        lifecycle.destroy(engine, vdi)
        cbt.forget_if_unused(engine, owner)

    def stat(self, dbg: str, sr: str, vdi: str) -> Dict[str, Any]:
        engine = self._engine(sr)
        with engine.locked(what="VDI.stat", reading=True):
            return engine.info(engine.visible(engine.load(), vdi))

    def set_persistent(self, dbg: str, sr: str, vdi: str, persistent: bool) -> None:
        snapshots.set_persistent(self._engine(sr), vdi, persistent)

    def epoch_begin(self, dbg: str, sr: str, vdi: str) -> None:
        snapshots.epoch_begin(self._engine(sr), vdi)

    def epoch_end(self, dbg: str, sr: str, vdi: str) -> None:
        engine = self._engine(sr)
        with engine.locked(what="VDI.epoch_end"):
            engine.visible(engine.load(), vdi)  # nothing to do at the end of an epoch but to exist

    def attach(self, dbg: str, dp: str, sr: str, vdi: str, read_write: bool) -> Dict[str, Any]:
        engine = self._engine(sr)
        cbt.refuse_without_data(engine, vdi, "VDI.attach")
        return attach.attach(engine, dp, vdi, read_write)

    def activate(self, dbg: str, dp: str, sr: str, vdi: str) -> None:
        attach.activate(self._engine(sr), dp, vdi)

    def deactivate(self, dbg: str, dp: str, sr: str, vdi: str) -> None:
        attach.deactivate(self._engine(sr), dp, vdi)

    def detach(self, dbg: str, dp: str, sr: str, vdi: str) -> None:
        attach.detach(self._engine(sr), dp, vdi)

    def copy(self, dbg: str, sr: str, vdi: str, url: str, dest: str) -> str:
        return copying.copy(self._engine(sr), vdi, url, dest)

    def get_url(self, dbg: str, sr: str, vdi: str) -> str:
        engine = self._engine(sr)
        with engine.locked(what="VDI.get_url"):
            return engine.substrate.volume_url(engine.visible(engine.load(), vdi).volume)

    def get_by_name(self, dbg: str, sr: str, name: str) -> Dict[str, Any]:
        engine = self._engine(sr)
        with engine.locked(what="VDI.get_by_name"):
            doc = engine.load()
            matches = sorted((r for r in doc.visible() if name in (r.name_label, r.uuid)),
                             key=lambda r: (r.name_label != name, r.uuid))
            if not matches:
                raise Does_not_exist("vdi", name)
            return engine.info(matches[0])

    def set_content_id(self, dbg: str, sr: str, vdi: str, content_id: str) -> None:
        self._set(sr, vdi, "content_id", content_id)

    def set_name_label(self, dbg: str, sr: str, vdi: str, new_name_label: str) -> None:
        self._set(sr, vdi, "name_label", new_name_label)

    def set_name_description(self, dbg: str, sr: str, vdi: str, new_name_description: str) -> None:
        self._set(sr, vdi, "name_description", new_name_description)

    def add_to_sm_config(self, dbg: str, sr: str, vdi: str, key: str, value: str) -> None:
        check_texts("sm_config", {key: value})
        lifecycle.edit(self._engine(sr), vdi, lambda r: r.sm_config.__setitem__(key, value),
                       "VDI.add_to_sm_config")

    def remove_from_sm_config(self, dbg: str, sr: str, vdi: str, key: str) -> None:
        lifecycle.edit(self._engine(sr), vdi, lambda r: r.sm_config.pop(key, None), "VDI.remove_from_sm_config")

    def compose(self, dbg: str, sr: str, vdi1: str, vdi2: str) -> None:
        snapshots.compose(self._engine(sr), vdi1, vdi2)

    def similar_content(self, dbg: str, sr: str, vdi: str) -> List[Dict[str, Any]]:
        engine = self._engine(sr)
        with engine.locked(what="VDI.similar_content"):
            doc = engine.load()
            engine.visible(doc, vdi)
            return [engine.info(doc.vdis[u]) for u in related_by_chain(doc, vdi)]

    def resize(self, dbg: str, sr: str, vdi: str, new_size: int) -> int:
        return lifecycle.resize(self._engine(sr), vdi, new_size)

    # -- changed-block tracking (smapi.sr.cbt) --------------------------------------------------------------------
    def enable_cbt(self, dbg: str, sr: str, vdi: str) -> None:
        cbt.enable(self._engine(sr), vdi)

    def disable_cbt(self, dbg: str, sr: str, vdi: str) -> None:
        cbt.disable(self._engine(sr), vdi)

    def data_destroy(self, dbg: str, sr: str, vdi: str) -> None:
        cbt.data_destroy(self._engine(sr), vdi)

    def list_changed_blocks(self, dbg: str, sr: str, vdi_from: str, vdi_tp: str) -> str:
        return cbt.whole_bitmap(self._engine(sr), vdi_from, vdi_tp)

    def compare(self, dbg: str, sr: str, vdi: str, vdi2: str) -> str:
        return cbt.compare(self._engine(sr), vdi, vdi2)

    def _set(self, sr: str, vdi: str, field: str, value: Any) -> None:
        check_text(field if field == "content_id" else f"new_{field}", value)

        def change(rec: VdiRecord) -> None:
            setattr(rec, field, value)

        lifecycle.edit(self._engine(sr), vdi, change, f"VDI.set_{field}")


def related_by_chain(doc: SrDocument, vdi: str) -> List[str]:
    """Visible VDIs sharing an ancestor with `vdi`, fewest tree edges apart first."""
    mine = [vdi] + doc.ancestors(vdi)
    distance_up = {u: i for i, u in enumerate(mine)}
    ranked = []
    for rec in doc.visible():
        if rec.uuid == vdi:
            continue
        for steps, anc in enumerate([rec.uuid] + doc.ancestors(rec.uuid)):
            if anc in distance_up:
                ranked.append((steps + distance_up[anc], rec.uuid))
                break
    return [u for _, u in sorted(ranked)]
