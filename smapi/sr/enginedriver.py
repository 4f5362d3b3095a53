"""EngineDriver: the base of drivers whose SRs are run by the SR engine.

Kept apart from `smapi.sr.storage_interface` and free of engine imports at module level: a driver module
subclasses this, and a per-verb executable that only answers `Plugin.Query` must not pay for loading the engine
and the VHD library. The engine is imported when a verb first needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict

from smapi.core.driver import Driver
from smapi.interface.errors import Sr_not_attached

if TYPE_CHECKING:
    from smapi.sr.access import VdiHandle
    from smapi.sr.engine import Engine
    from smapi.sr.substrate import Substrate

#: what drivers list for the engine's SR and VDI implementations (imported on first use)
ENGINE_SR = "smapi.sr.storage_interface:EngineSR"
ENGINE_VDI = "smapi.sr.storage_interface:EngineVDI"


class EngineDriver(Driver):
    """A driver whose SRs are run by the SR engine on some substrate."""

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        raise NotImplementedError

    def canonical_config(self, device_config: Dict[str, str]) -> Dict[str, str]:
        """The device_config recorded at attach, for every later verb on this host (which may run in another
        working directory): a driver whose config holds a relative path makes it absolute here."""
        return dict(device_config)

    @classmethod
    def reference(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"

    def engine_for(self, sr: str) -> Engine:
        """The engine of an SR attached on this host; Sr_not_attached otherwise."""
        from smapi.sr.assembly import build_engine
        from smapi.sr.names import check_sr
        from smapi.sr.runstate import RunState

        record = RunState().attached(check_sr(sr))
        if record is None:
            raise Sr_not_attached(sr)
        config = record["device_config"]
        return build_engine(self.make_substrate(config), sr, driver_ref=self.reference(), device_config=config)

    # -- for tools (CLI vdi-import/export, demo, VDI.copy) ------------------------------------------------------
    def open_vdi(self, sr: str, vdi: str, writable: bool = False) -> VdiHandle:
        return self.engine_for(sr).open_vdi(vdi, writable=writable)

    def gc(self, sr: str) -> Dict[str, int]:
        return self.engine_for(sr).gc()
