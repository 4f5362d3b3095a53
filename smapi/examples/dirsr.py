"""A complete, small smapi driver a vendor can copy: each VDI is a sparse raw file in a directory.

It ships with smapi and is registered as `dirsr`; copy this file to start your own. Serve it with any
transport, and certify it:

    smapi serve --driver dirsr --unix /tmp/dirsr.sock
    smapi plugin-install --driver dirsr /tmp/plugin-dir
    smapi conformance --driver dirsr

The SR lives at `device_config["path"]`; metadata is one JSON file written atomically. Attached SRs are
remembered in a small state file so that separate processes (per-verb executables, the classic executable)
agree on what is attached. It declares no snapshot, clone, resize or datapath features, so the conformance
suite skips those tests; its `open_vdi` hook lets the suite and the CLI read and write VDIs.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any, Dict

# (a driver outside smapi may write `from smapi import Driver, ...`; inside the package, modules name their layer)
from smapi.core.driver import Driver
from smapi.interface.errors import Backend_error, Sr_not_attached, Vdi_does_not_exist
from smapi.interface.features import v3_names
from smapi.interface.skeletons.storage import Query_skeleton, SR_skeleton, VDI_skeleton
from smapi.interface.skeletons.v3 import Plugin_skeleton
from smapi.interface.storage import vdi_info

STATE_DIR = os.environ.get("SMAPI_EXAMPLE_STATE", os.path.join(tempfile.gettempdir(), "smapi-example"))
CONFIGURATION = {"path": "Directory that holds the SR (created by SR.create)"}


def state_dir() -> str:
    """Where attached SRs are remembered: $SMAPI_EXAMPLE_STATE, else beside smapi's own host-local state.

    Read on every call, so that a test (or the conformance suite simulating a rebooted host) can move it."""
    explicit = os.environ.get("SMAPI_EXAMPLE_STATE")
    if explicit:
        return explicit
    run_dir = os.environ.get("SMAPI_RUN_DIR")
    return os.path.join(run_dir, "dirsr") if run_dir else os.path.join(tempfile.gettempdir(), "smapi-example")


def _write_json(path: str, value: Any) -> None:
    """Write-then-rename so a crash never leaves half a file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: str, default: Any) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


class _Shared:
    """What the SR and VDI implementations share: where attached SRs live, and their metadata."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    @staticmethod
    def attached() -> Dict[str, str]:
        return _read_json(os.path.join(state_dir(), "attached.json"), {})

    def sr_path(self, sr: str) -> str:
        path = self.attached().get(sr)
        if path is None:
            raise Sr_not_attached(sr)
        return path

    def metadata(self, sr: str) -> Dict[str, Any]:
        return _read_json(os.path.join(self.sr_path(sr), "sr.json"), {"vdis": {}})

    def save(self, sr: str, meta: Dict[str, Any]) -> None:
        _write_json(os.path.join(self.sr_path(sr), "sr.json"), meta)


class ExampleQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        # The features are derived from the verbs the SR and VDI classes below implement (SR_CREATE from
        # SR.create, VDI_DELETE from VDI.destroy, ...): see smapi.interface.features.
        return {
            "driver": "dirsr", "name": "Directory SR example", "description": "Raw files in a directory",
            "vendor": "smapi examples", "copyright": "public domain", "version": "1.0",
            "required_api_version": "2.0", "features": self.driver.features(), "configuration": CONFIGURATION,
        }

    def diagnostics(self, dbg: str) -> str:
        return f"attached SRs: {_Shared.attached()}"


class ExampleSR(_Shared, SR_skeleton):
    def create(self, dbg: str, sr: str, device_config: Dict[str, str], physical_size: int) -> None:
        path = device_config.get("path")
        if not path:
            raise Backend_error.classic("ConfigLocationMissing", "device_config needs 'path'")
        os.makedirs(path, exist_ok=True)
        if os.path.exists(os.path.join(path, "sr.json")):
            raise Backend_error.classic("SRExists", path)
        _write_json(os.path.join(path, "sr.json"), {"uuid": sr, "vdis": {}})

    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        path = device_config.get("path", "")
        if not os.path.exists(os.path.join(path, "sr.json")):
            raise Backend_error.classic("SRUnavailable", f"no SR at {path!r}")
        os.makedirs(state_dir(), exist_ok=True)
        attached = self.attached()
        attached[sr] = path
        _write_json(os.path.join(state_dir(), "attached.json"), attached)

    def detach(self, dbg: str, sr: str) -> None:
        attached = self.attached()
        if attached.pop(sr, None) is not None:
            _write_json(os.path.join(state_dir(), "attached.json"), attached)

    def ls(self, dbg: str) -> list:
        return sorted(self.attached())

    def scan(self, dbg: str, sr: str) -> list:
        return list(self.metadata(sr)["vdis"].values())


class ExampleVDI(_Shared, VDI_skeleton):
    def create(self, dbg: str, sr: str, vdi_info_in: Dict[str, Any]) -> Dict[str, Any]:
        meta = self.metadata(sr)
        vid = str(uuid.uuid4())
        size = (vdi_info_in["virtual_size"] + 511) // 512 * 512  # round up to whole sectors
        with open(os.path.join(self.sr_path(sr), vid + ".raw"), "wb") as f:
            f.truncate(size)
        info = vdi_info.make(**{**vdi_info_in, "vdi": vid, "virtual_size": size})
        meta["vdis"][vid] = info
        self.save(sr, meta)
        return info

    def stat(self, dbg: str, sr: str, vdi: str) -> Dict[str, Any]:
        try:
            return self.metadata(sr)["vdis"][vdi]
        except KeyError:
            raise Vdi_does_not_exist(vdi) from None

    def destroy(self, dbg: str, sr: str, vdi: str) -> None:
        meta = self.metadata(sr)
        if meta["vdis"].pop(vdi, None) is None:
            raise Vdi_does_not_exist(vdi)
        self.save(sr, meta)
        os.unlink(os.path.join(self.sr_path(sr), vdi + ".raw"))


class ExamplePlugin(Plugin_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        q = ExampleQuery(self.driver).query(dbg)
        return {**{k: v for k, v in q.items() if k not in ("driver", "features")}, "plugin": "dirsr",
                "features": v3_names(q["features"]), "required_cluster_stack": []}

    def ls(self, dbg: str) -> list:
        return sorted(_Shared.attached())


class RawHandle:
    """What `open_vdi` returns: positional reads and writes on the VDI's raw file."""

    def __init__(self, path: str, writable: bool) -> None:
        self._fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, max(0, min(length, self.size - offset)), offset)

    def write(self, offset: int, data: bytes) -> None:
        if offset < 0 or offset + len(data) > self.size:
            raise Backend_error.classic("VDISize", f"write of {len(data)} bytes at {offset} is outside the VDI")
        os.pwrite(self._fd, data, offset)

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> RawHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class DirSR(Driver):
    name = "dirsr"
    storage = {"Query": ExampleQuery, "SR": ExampleSR, "VDI": ExampleVDI}
    v3 = {"Plugin": ExamplePlugin}

    def open_vdi(self, sr: str, vdi: str, writable: bool = False) -> RawHandle:
        """The hook tools use for data (the storage interface has no read/write verb): `smapi vdi-import`,
        `vdi-export` and the conformance suite."""
        shared = _Shared(self)
        if vdi not in shared.metadata(sr)["vdis"]:
            raise Vdi_does_not_exist(vdi)
        return RawHandle(os.path.join(shared.sr_path(sr), vdi + ".raw"), writable)
