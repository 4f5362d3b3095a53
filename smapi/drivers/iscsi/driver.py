"""IscsiDriver: an initiator plus the LVM SR, like the classic LVM-over-iSCSI SR.

SR.create and SR.attach resolve the LUN with a real login (typed errors for a wrong secret, an unknown IQN, a
missing LUN, an unreachable portal), log in through the host's initiator (`initiator.py`) and hand the local
block device it yields to the unchanged LVM SR (a volume group on the LUN). The session's host-local state lives
in ``<run>/iscsi/<sr>/``; SR.detach releases it, and the next attach replaces what a crash left.

Every later verb first checks the path to the LUN (the session is intact, the portal answers), so during a
target outage verbs fail at once with ISCSITarget instead of blocking on I/O; once the target is back the same
session carries on (qemu's libiscsi reconnects) with nothing lost. An I/O already under way when the target goes
waits for it, as with the kernel initiator's session recovery.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid as uuidlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from smapi.drivers.iscsi import discovery, probe
from smapi.drivers.iscsi.config import CONFIGURATION, IscsiTarget, parse_portal, parse_target, without_secrets
from smapi.drivers.iscsi.initiator import read_state, write_state
from smapi.drivers.iscsi.initiators import initiator, logout_any
from smapi.drivers.iscsi.libiscsi import IscsiFailure, LunInfo, check_reachable
from smapi.drivers.iscsi.userspace import running
from smapi.drivers.lvm.config import SHARED_KEY, SR_KEY
from smapi.drivers.lvm.driver import LvmDriver, LvmSR
from smapi.interface.errors import Backend_error
from smapi.interface.skeletons.storage import Query_skeleton
from smapi.sr import vdi_servers
from smapi.sr.runstate import RunState, run_dir
from smapi.sr.storage_interface import EngineVDI
from smapi.sr.substrate import Substrate

#: private device_config key: the SR whose iSCSI session the substrate must check before use
SESSION_KEY = "_iscsi_sr"
#: keys of the caller's device_config the LVM SR underneath understands
_LVM_KEYS = ("provisioning", "allocation", "force", "host_id")


def session_dir(name: str) -> str:
    return os.path.join(run_dir(), "iscsi", name)


class IscsiQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {
            "driver": "iscsi", "name": "LVM over iSCSI",
            "description": "VHD (default) or raw VDIs as logical volumes of a volume group on an iSCSI LUN; "
                           "SR.probe discovers targets and LUNs",
            "vendor": "smapi", "copyright": "LGPL-2.1-or-later", "version": "0.1",
            "required_api_version": "2.0", "features": self.driver.features(), "configuration": CONFIGURATION,
            "supported_image_formats": ["vhd", "raw"],
        }

    def diagnostics(self, dbg: str) -> str:
        srs = RunState().attached_srs(IscsiDriver.reference())
        try:
            kind = initiator().name
        except Backend_error as e:
            kind = f"none ({e.message()})"
        return f"iSCSI SRs attached on this host: {srs}; initiator: {kind}"


def lvm_config(device_config: Dict[str, str], device: str, sr: str = "") -> Dict[str, str]:
    out = {k: device_config[k] for k in _LVM_KEYS if device_config.get(k)}
    out["device"] = device
    out[SHARED_KEY] = "true"  # a LUN is shared storage: every iSCSI SR is a pool SR (sanlock leases)
    if sr:
        out[SR_KEY] = sr
    return out


def _resolve(target: IscsiTarget) -> Tuple[IscsiTarget, LunInfo]:
    """The LUN, through the first of the configured portals that logs in (that portal is the one used)."""
    return discovery.resolve_any(target)


#: a temporary session without a recorded owner this old was left by a verb killed while logging in
_OWNERLESS_AFTER = 120.0


def reap_temporary_sessions() -> None:
    """Log out the temporary sessions (probe, create) of verbs that were killed before they logged out."""
    base = os.path.join(run_dir(), "iscsi")
    try:
        names = [n for n in os.listdir(base) if n.startswith("tmp-")]
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(base, name)
        owner = int(read_state(path).get("owner") or 0)
        if owner:
            if os.path.exists(f"/proc/{owner}") and running(owner):
                continue
        else:
            with contextlib.suppress(OSError):
                if time.time() - os.stat(path).st_mtime < _OWNERLESS_AFTER:
                    continue
        with contextlib.suppress(Exception):
            logout_any(path)


@contextlib.contextmanager
def lun_device(sr: str, target: IscsiTarget, info: LunInfo) -> Iterator[str]:
    """The LUN's block device: the attached SR's own session, else a temporary one for this call."""
    if sr:
        dev = _session_device(sr)
        if dev:
            yield dev
            return
    reap_temporary_sessions()
    tmp = session_dir(f"tmp-{uuidlib.uuid4().hex[:12]}")
    ini = initiator()
    try:
        device = ini.login(target, info, tmp)
        write_state(tmp, {**read_state(tmp), "owner": os.getpid()})
        yield device
    finally:
        ini.logout(tmp)


def _session_device(sr: str) -> Optional[str]:
    state = read_state(session_dir(sr))
    if not state:
        return None
    return initiator(state.get("initiator", "")).device(session_dir(sr))


class _SessionGone(Exception):
    pass


class IscsiSR(LvmSR):
    driver: IscsiDriver

    def create(self, dbg: str, sr: str, device_config: Dict[str, str], physical_size: int) -> None:
        target, info = _resolve(parse_target(device_config))
        with lun_device(sr, target, info) as device:
            super().create(dbg, sr, lvm_config(device_config, device), physical_size)

    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        target, info = _resolve(parse_target(device_config))
        sdir = session_dir(sr)
        reap_temporary_sessions()
        fresh = _session_device(sr) is None
        device = initiator().login(target, info, sdir)
        # What the host remembers of the attach: the LVM SR's configuration plus where the LUN is, no secrets.
        remembered = {**without_secrets(device_config), **lvm_config(device_config, device), SESSION_KEY: sr,
                      "SCSIid": info.scsi_id, "LUNid": str(info.lun)}
        try:
            super().attach(dbg, sr, remembered)
        except BaseException:
            if fresh:
                with contextlib.suppress(Exception):
                    logout_any(sdir)
            raise

    def detach(self, dbg: str, sr: str) -> None:
        # The LUN must be reachable first: releasing datapaths flushes through it, and a detach that cannot
        # flush fails (typed, at once, from the path check) and leaves the SR attached rather than drop data.
        if RunState().attached(sr) is not None:
            try:
                if _session_device(sr) is None:
                    raise _SessionGone()
                super().detach(dbg, sr)
            except (_SessionGone, Backend_error) as e:
                if isinstance(e, Backend_error) and _session_device(sr) is not None:
                    raise
                # The session died (its daemon was killed, the host restarted): nothing can be flushed through
                # it any more; stop what still uses it (servers, loop devices over LVs) and forget the attach.
                with contextlib.suppress(Exception):
                    vdi_servers.release_all(self._unchecked_engine(sr))
                with contextlib.suppress(Exception):
                    self.leave_quietly(self._unchecked_engine(sr).substrate)
                RunState().forget_attach(sr)
        logout_any(session_dir(sr))

    def _unchecked_engine(self, sr: str) -> Any:
        from smapi.sr.assembly import build_engine

        record = RunState().attached(sr) or {}
        config = record.get("device_config", {})
        sub = LvmDriver.make_substrate(self.driver, lvm_config(config, config.get("device", ""), sr))
        return build_engine(sub, sr, driver_ref=self.driver.reference(), device_config=config)

    def destroy(self, dbg: str, sr: str) -> None:
        super().destroy(dbg, sr)
        logout_any(session_dir(sr))

    def probe(self, dbg: str, device_config: Dict[str, str], sm_config: Dict[str, str]) -> Any:
        target = parse_target(device_config, need_lun=False)
        if not target.iqn:
            portal, found = discovery.on_portals(target.portals, lambda p: discovery.targets(p, target.chap))
            return ["Raw", probe.targets_xml(portal, found)]
        if target.lun is None and not target.scsi_id:
            _, luns = discovery.on_portals(target.portals, lambda p: discovery.luns(p, target.iqn, target.chap))
            return ["Raw", probe.luns_xml(luns)]
        return ["Probe", self.probe_lun(dbg, device_config, target, sm_config)]

    def probe_lun(self, dbg: str, device_config: Dict[str, str], target: IscsiTarget,
                  sm_config: Dict[str, str]) -> List[Dict[str, Any]]:
        """The SRs on the LUN (and foreign volume groups, as the LVM SR reports them), with iSCSI configurations."""
        target, info = _resolve(target)
        attached = [s for s in RunState().attached_srs(IscsiDriver.reference())
                    if (RunState().attached(s) or {}).get("device_config", {}).get("SCSIid") == info.scsi_id]
        with lun_device(attached[0] if attached else "", target, info) as device:
            _, found = super().probe(dbg, lvm_config(device_config, device), sm_config)
        base = {**without_secrets(device_config), "SCSIid": info.scsi_id, "LUNid": str(info.lun)}
        for entry in found:
            lvm_keys = {k: v for k, v in entry["configuration"].items() if k != "device"}
            entry["configuration"] = {**base, **lvm_keys}
            entry["extra_info"] = {**entry.get("extra_info", {}), "SCSIid": info.scsi_id}
        return found


def check_path(sr: str, device_config: Dict[str, str]) -> None:
    """Typed errors, fast, when the attached SR's LUN cannot be reached: its session broke or the target is away."""
    dev = _session_device(sr)
    if dev is None or dev != device_config.get("device"):
        raise Backend_error.classic("ISCSIDevice", f"the iSCSI session of SR {sr} is gone (its initiator "
                                                   "process died or the host restarted); SR.attach restores it")
    # The portal the session logged in through (with several configured, not necessarily the first).
    recorded = read_state(session_dir(sr)).get("target", "")
    portal = parse_portal({"target": recorded}) if recorded else parse_portal(device_config)
    try:
        check_reachable(portal, min(discovery.timeout(), 3.0))
    except IscsiFailure as e:
        raise Backend_error.classic("ISCSITarget", f"SR {sr}: {e}; the SR stays attached and resumes when the "
                                                   "target answers again") from None


class IscsiDriver(LvmDriver):
    name = "iscsi"
    storage = {"Query": IscsiQuery, "SR": IscsiSR, "VDI": EngineVDI}
    v3 = {"SR": "smapi.drivers.iscsi.v3:IscsiSROnStorage"}

    def make_substrate(self, device_config: Dict[str, str]) -> Substrate:
        sr = device_config.get(SESSION_KEY)
        if sr:
            check_path(sr, device_config)
        elif "device" not in device_config:
            raise Backend_error.classic("SRUnavailable", "iSCSI SR used before SR.attach on this host")
        return super().make_substrate(lvm_config(device_config, device_config["device"],
                                                 device_config.get(SR_KEY, "")))


__all__ = ["IscsiDriver"]
