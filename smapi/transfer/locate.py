"""Finding a VDI by uuid among the SRs this host has attached, and opening its data.

How a VDI uuid is resolved: the run state (`$SMAPI_RUN_DIR/srs/*.json`, written by SR.attach) lists every SR
attached on this host with the driver reference that attached it. Each SR is asked `VDI.stat` for the uuid
through the driver's own storage implementation (the same dispatcher every transport uses), in sorted SR order;
the first SR that knows the VDI wins (uuids are unique). No attached SR knows it -> VDINotFound. The data is then
reached with the driver's `open_vdi(sr, vdi, writable)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from smapi.interface.errors import SmapiError, VDINotFound


@dataclass(frozen=True)
class LocatedVdi:
    sr: str
    vdi: str
    driver_ref: str
    info: Dict[str, Any]

    @property
    def virtual_size(self) -> int:
        return int(self.info.get("virtual_size", 0))

    @property
    def read_only(self) -> bool:
        return bool(self.info.get("read_only", False))


def _driver(ref: str) -> Any:
    from smapi.core.driver import load_driver

    return load_driver(ref)


def _storage_call(driver: Any, verb: str, **args: Any) -> Any:
    return driver.call("storage", verb, dbg="transfer", **args)


def attached_srs() -> List[tuple]:
    """(sr uuid, driver reference) of every SR attached on this host."""
    from smapi.sr.runstate import RunState

    state = RunState()
    out = []
    for sr in state.attached_srs():
        record = state.attached(sr) or {}
        if record.get("driver"):
            out.append((sr, record["driver"]))
    return out


def find_vdi(vdi: str) -> LocatedVdi:
    for sr, ref in attached_srs():
        try:
            info = _storage_call(_driver(ref), "VDI.stat", sr=sr, vdi=vdi)
        except SmapiError:
            continue  # not this SR's VDI (or the SR cannot answer): keep looking
        return LocatedVdi(sr, vdi, ref, info)
    raise VDINotFound(vdi)


def sr_vdis(located: LocatedVdi) -> List[Dict[str, Any]]:
    """Every VDI of the SR holding `located` (for snapshot trees)."""
    return list(_storage_call(_driver(located.driver_ref), "SR.scan", sr=located.sr))


def in_use(located: LocatedVdi) -> Optional[str]:
    """A reason when a datapath has the VDI attached on this host (it is "mounted to some VM")."""
    from smapi.sr.runstate import RunState

    states = RunState().dp_states(located.sr, located.vdi)
    live = {dp: s for dp, s in states.items() if s != "Detached"}
    return ", ".join(f"{dp}={s}" for dp, s in sorted(live.items())) or None


def open_data(located: LocatedVdi, writable: bool) -> Any:
    """The driver's data handle (read/write/flush/close/size); it holds the VDI's lock until closed."""
    driver = _driver(located.driver_ref)
    opener = getattr(driver, "open_vdi", None)
    if opener is None:
        from smapi.interface.errors import Unimplemented

        raise Unimplemented(f"data access (open_vdi) in driver {located.driver_ref}")
    return opener(located.sr, located.vdi, writable=writable)


def create_vdi(sr: str, size: int, name_label: str) -> str:
    """A new VDI of `size` bytes in attached SR `sr` (its uuid); VDINotFound-like errors come from the driver."""
    ref = dict(attached_srs()).get(sr)
    if ref is None:
        from smapi.interface.errors import Sr_not_attached

        raise Sr_not_attached(sr)
    info = _storage_call(_driver(ref), "VDI.create", sr=sr,
                         vdi_info={"virtual_size": size, "name_label": name_label})
    return str(info["vdi"])


def destroy_vdi(vdi: str) -> None:
    located = find_vdi(vdi)
    _storage_call(_driver(located.driver_ref), "VDI.destroy", sr=located.sr, vdi=vdi)
