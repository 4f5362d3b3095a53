"""Host-local runtime state: which SRs are attached on this host and each VDI's datapath states.

It lives under a run directory (`$SMAPI_RUN_DIR`, default /run/smapi), which is a tmpfs on a real host: a reboot
forgets it, and attaching an SR rebuilds what is needed from the SR itself. The variable is read on every call
so tests (and several toolstacks on one machine) can keep their state apart.

    <run>/srs/<sr>.json            {"driver": "module:Class", "device_config": {...}}
    <run>/dp/<sr>/<vdi>.json       {"<dp>": "Attached(RW)", ...}
    <run>/locks/...                host-local locks guarding the files above
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager, suppress
from typing import Any, Dict, Iterator, List, Optional

from smapi.common.files import read_json
from smapi.common.files import write_json as write_json_atomically
from smapi.sr.locks import FileLock
from smapi.sr.names import check_component

ENV = "SMAPI_RUN_DIR"
DEFAULT_RUN_DIR = "/run/smapi"


def run_dir() -> str:
    return os.environ.get(ENV) or DEFAULT_RUN_DIR


def _safe(name: str) -> str:
    return check_component("name", name)


class RunState:
    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root or run_dir()

    # -- writers ------------------------------------------------------------------------------------------------
    def writer_lock(self, sr: str, vdi: str) -> FileLock:
        """Held (exclusively) by a writable data handle of `vdi` on this host for as long as it is open.

        VDI.activate probes it with a shared try-lock: a flock, so a crashed writer leaves nothing to clean up. It
        is not the VDI lock: that one is also held by the collector's copies, which activate must not wait for."""
        return FileLock(os.path.join(self.root, "writers", _safe(sr), _safe(vdi) + ".lock"))

    # -- attached SRs -------------------------------------------------------------------------------------------
    def _sr_file(self, sr: str) -> str:
        return os.path.join(self.root, "srs", _safe(sr) + ".json")

    def attached(self, sr: str) -> Optional[Dict[str, Any]]:
        return read_json(self._sr_file(sr))

    def record_attach(self, sr: str, driver: str, device_config: Dict[str, str]) -> None:
        os.makedirs(os.path.join(self.root, "srs"), exist_ok=True)
        write_json_atomically(self._sr_file(sr), {"driver": driver, "device_config": device_config})

    def forget_attach(self, sr: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self._sr_file(sr))
        shutil.rmtree(os.path.join(self.root, "dp", _safe(sr)), ignore_errors=True)

    def attached_srs(self, driver: Optional[str] = None) -> List[str]:
        directory = os.path.join(self.root, "srs")
        try:
            names = sorted(n[:-5] for n in os.listdir(directory) if n.endswith(".json"))
        except FileNotFoundError:
            return []
        if driver is None:
            return names
        return [n for n in names if (self.attached(n) or {}).get("driver") == driver]

    # -- datapaths ------------------------------------------------------------------------------------------------
    def _dp_file(self, sr: str, vdi: str) -> str:
        return os.path.join(self.root, "dp", _safe(sr), _safe(vdi) + ".json")

    def dp_lock(self, sr: str, vdi: str) -> FileLock:
        return FileLock(os.path.join(self.root, "locks", _safe(sr), "dp-" + _safe(vdi)))

    def dp_states(self, sr: str, vdi: str) -> Dict[str, str]:
        return read_json(self._dp_file(sr, vdi)) or {}

    def set_dp_states(self, sr: str, vdi: str, states: Dict[str, str]) -> None:
        path = self._dp_file(sr, vdi)
        live = {dp: s for dp, s in states.items() if s != "Detached"}
        if not live:
            with suppress(FileNotFoundError):
                os.unlink(path)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomically(path, live)

    def vdis_with_datapaths(self, sr: str) -> List[str]:
        directory = os.path.join(self.root, "dp", _safe(sr))
        try:
            return sorted(n[:-5] for n in os.listdir(directory) if n.endswith(".json"))
        except FileNotFoundError:
            return []

    @contextmanager
    def editing_dps(self, sr: str, vdi: str) -> Iterator[Dict[str, str]]:
        """Read-modify-write a VDI's datapath states under its host-local lock."""
        with self.dp_lock(sr, vdi).hold():
            states = self.dp_states(sr, vdi)
            yield states
            self.set_dp_states(sr, vdi, states)
