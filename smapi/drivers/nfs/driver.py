"""NfsDriver: a shared SR in `<serverpath>/<sr_uuid>/` on an NFS export, run by the unchanged SR engine.

Each host mounts the serverpath at `<run>/nfs/<sr_uuid>` when it attaches the SR (kernel client or the FUSE
userspace client, `mount.py`) and the engine works on the directory substrate there. Attaching joins the SR's
sanlock lockspace (`smapi.sr.sanlock`), whose leases order every metadata change, collector and VDI across
hosts, so several hosts may attach the SR and change it at the same time (docs/pool.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid as uuidlib
from typing import Any, Dict, Iterator, List

from smapi.drivers.nfs.config import CONFIGURATION, NfsTarget, from_device_config
from smapi.drivers.nfs.discovery import discover, exports_xml
from smapi.drivers.nfs.mount import is_mounted, mounter
from smapi.drivers.nfs.substrate import PUBLIC_KEYS, NfsSubstrate
from smapi.interface.errors import Backend_error
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr.runstate import RunState, run_dir
from smapi.sr.sanlock.pool import SrPool
from smapi.sr.sanlock.shared import joined_for_attach, leave, refuse_destroy_while_shared
from smapi.sr.storage_interface import EngineDriver, EngineSR, EngineVDI
from smapi.sr.substrate import Substrate

#: private device_config keys the driver adds for the engine (never shown to callers)
SR_KEY = "_nfs_sr"
PATH_KEY = "_nfs_path"


def mountpoint(sr: str) -> str:
    return os.path.join(run_dir(), "nfs", sr)


def public(device_config: Dict[str, str]) -> Dict[str, str]:
    return {k: v for k, v in device_config.items() if not k.startswith("_nfs_")}


class NfsQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {
            "driver": "nfs", "name": "NFS SR", "description": "VHD or raw VDIs as files on an NFS export, shared by "
            "every host that attaches it", "vendor": "smapi", "copyright": "LGPL-2.1-or-later", "version": "0.1",
            "required_api_version": "2.0", "features": self.driver.features(), "configuration": CONFIGURATION,
            "supported_image_formats": ["vhd", "raw"],
        }

    def diagnostics(self, dbg: str) -> str:
        srs = RunState().attached_srs(NfsDriver.reference())
        from smapi.datapath.native import diagnostics_line

        return f"NFS SRs attached on this host: {srs}; client: {mounter().name}; {diagnostics_line()}"


@contextlib.contextmanager
def mounted_serverpath(target: NfsTarget, device_config: Dict[str, str], sr: str = "") -> Iterator[str]:
    """The serverpath mounted somewhere: the SR's own mount when this host has it, else a temporary one."""
    if sr and is_mounted(mountpoint(sr)):
        yield mountpoint(sr)
        return
    mnt = os.path.join(run_dir(), "nfs", f"tmp-{uuidlib.uuid4().hex[:12]}")
    m = mounter()
    m.mount(target, public(device_config), mnt)
    try:
        yield mnt
    finally:
        m.unmount(mnt)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


class NfsSR(EngineSR):
    def create(self, dbg: str, sr: str, device_config: Dict[str, str], physical_size: int) -> None:
        target = from_device_config(device_config)
        with mounted_serverpath(target, device_config, sr) as mnt:
            # One SR per serverpath, so a device_config names one SR (as for every other SR type); more SRs
            # on one export live in subdirectories (serverpath=/export/sr2), which v3 and v4 both mount.
            others = [os.path.basename(s.path) for s in NfsSubstrate(mnt, target, device_config).probe()]
            if others:
                raise Backend_error.classic("SRExists", f"{target.remote()} already holds SR {', '.join(others)}; "
                                                        "use another serverpath (a subdirectory works)")
            path = os.path.join(mnt, sr)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise Backend_error.classic("NFSCreate", f"{target.remote()}/{sr}: {e}") from e
            super().create(dbg, sr, {**device_config, PATH_KEY: path}, physical_size)

    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        target = from_device_config(device_config)
        mnt = mountpoint(sr)
        fresh = not is_mounted(mnt)
        m = mounter()
        m.mount(target, public(device_config), mnt)
        config = {**public(device_config), SR_KEY: sr}
        pool = self._pool(config)
        try:
            with joined_for_attach(pool, sr):
                super().attach(dbg, sr, config)
        except BaseException:
            if fresh:
                with contextlib.suppress(Exception):
                    m.unmount(mnt)
            raise

    def detach(self, dbg: str, sr: str) -> None:
        try:
            sub = self._engine(sr).substrate
            assert isinstance(sub, NfsSubstrate)
            super().detach(dbg, sr)
            leave(sub.pool(), sr)
        finally:
            self._unmount(sr)

    def destroy(self, dbg: str, sr: str) -> None:
        sub = self._engine(sr).substrate
        assert isinstance(sub, NfsSubstrate)
        refuse_destroy_while_shared(sub.pool(), sr)
        super().destroy(dbg, sr)
        with contextlib.suppress(Exception):
            sub.pool().leave()
        shutil.rmtree(sub.lease_dir(), ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(sub.path)
        self._unmount(sr)

    def probe(self, dbg: str, device_config: Dict[str, str], sm_config: Dict[str, str]) -> Any:
        target = from_device_config(device_config, need_path=False)
        if not target.serverpath:
            explicit = bool((device_config.get("nfsversion") or "").strip())
            return ["Raw", exports_xml(target.server, discover(target, explicit))]
        with mounted_serverpath(target, device_config) as mnt:
            return super().probe(dbg, {**device_config, PATH_KEY: mnt}, sm_config)

    def _pool(self, config: Dict[str, str]) -> SrPool:
        sub = self.driver.make_substrate(config)
        assert isinstance(sub, NfsSubstrate)
        return sub.pool()

    @staticmethod
    def _unmount(sr: str) -> None:
        mnt = mountpoint(sr)
        mounter().unmount(mnt)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


class NfsDriver(EngineDriver):
    name = "nfs"
    storage = {"Query": NfsQuery, "SR": NfsSR, "VDI": EngineVDI}
    #: as sm's NFS SR: a shared SR whose VDIs a host may cache locally (no verb stands for it)
    extra_features = ("SR_CACHING",)

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        target = from_device_config(device_config)
        path = device_config.get(PATH_KEY)
        if not path:
            sr = device_config.get(SR_KEY)
            if not sr:
                raise Backend_error.classic("SRUnavailable", "NFS SR used before SR.attach on this host")
            path = os.path.join(mountpoint(sr), sr)
        return NfsSubstrate(path, target, device_config)


__all__: List[str] = ["NfsDriver", "PUBLIC_KEYS"]
