"""Exposure state files: what `cleanup`, `get_record` and `unexpose` find after the service process is gone.

    $SMAPI_RUN_DIR/transfer/<record handle>/state.json   the exposure (see `Exposure`)
    $SMAPI_RUN_DIR/transfer/<record handle>/cert.pem     TLS certificate (use_ssl), key.pem next to it
    $SMAPI_RUN_DIR/transfer/<record handle>/server.log   the exposure server's access and error log
    $SMAPI_RUN_DIR/transfer/logs/                        logs kept by get_log / save_logs

The exposure server process (`smapi.transfer.daemon`) owns one directory; its pid is in the state, and a state
whose process is gone is what `cleanup` removes. The run directory is a tmpfs on a real host, so a reboot
forgets every exposure, which is right: the servers are gone too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from smapi.common.files import write_json
from smapi.sr.runstate import run_dir


def transfer_root() -> str:
    return os.path.join(run_dir(), "transfer")


def logs_dir() -> str:
    return os.path.join(transfer_root(), "logs")


def exposure_dir(handle: str) -> str:
    if not handle or "/" in handle or handle.startswith(".") or handle == "logs":
        raise ValueError(f"bad record handle {handle!r}")
    return os.path.join(transfer_root(), handle)


@dataclass
class Exposure:
    handle: str
    vdi_uuid: str
    sr: str
    driver_ref: str
    transfer_mode: str
    ip: str
    port: int
    use_ssl: bool
    read_only: bool
    username: str
    password: str
    timeout_minutes: int = 0
    get_log: bool = False
    #: "starting" until the server listens, then "exposed"; "failed" / "timedout" when it gave up
    status: str = "starting"
    pid: int = 0
    error: str = ""
    iscsi_iqn: str = ""
    iscsi_lun: str = ""
    iscsi_sn: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    #: wall-clock time of the expose call: a "starting" exposure younger than the start timeout is in progress
    created: float = field(default_factory=time.time)

    @property
    def directory(self) -> str:
        return exposure_dir(self.handle)

    @property
    def cert_path(self) -> str:
        return os.path.join(self.directory, "cert.pem")

    @property
    def key_path(self) -> str:
        return os.path.join(self.directory, "key.pem")

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "server.log")

    @property
    def url_path(self) -> str:
        return f"/vdi_uuid_{self.vdi_uuid}"

    def save(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = os.path.join(self.directory, "state.json")
        # The service and the exposure server both write the state (each temporary name is unique); it holds the
        # exposure's password: readable by root only.
        write_json(path, asdict(self), mode=0o600)

    @classmethod
    def load(cls, handle: str) -> Optional[Exposure]:
        try:
            with open(os.path.join(exposure_dir(handle), "state.json")) as f:
                data = json.load(f)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError:
            return None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def all_handles() -> List[str]:
    try:
        names = os.listdir(transfer_root())
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n != "logs" and not n.startswith("."))


def all_exposures() -> List[Exposure]:
    return [e for e in (Exposure.load(h) for h in all_handles()) if e is not None]
