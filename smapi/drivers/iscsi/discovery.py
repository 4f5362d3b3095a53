"""Finding targets and LUNs (userspace, libiscsi) and turning iSCSI failures into typed SMAPI errors.

Discovery runs in userspace whatever initiator attaches the LUN: it needs no kernel support, and it checks a
login (CHAP both ways) before anything is set up, so a wrong secret or an unknown IQN is named at once.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable, List, Sequence, Tuple, TypeVar

from smapi.drivers.iscsi import libiscsi
from smapi.drivers.iscsi.config import IscsiTarget
from smapi.drivers.iscsi.libiscsi import Chap, IscsiFailure, LunInfo, Portal
from smapi.interface.errors import Backend_error

TIMEOUT_ENV = "SMAPI_ISCSI_TIMEOUT"
INITIATOR_ENV = "SMAPI_ISCSI_INITIATOR"

T = TypeVar("T")

_KIND_TO_ERROR = {
    "unreachable": "ISCSITarget",
    "chap": "ISCSILogin",
    "login": "ISCSILogin",
    "target": "ISCSIIQN",
    "lun": "ConfigLUNMissing",
    "io": "ISCSIDevice",
    "unavailable": "ISCSIInitiator",
}


def timeout() -> float:
    """Seconds any one network step may take (connect, login, a SCSI command)."""
    try:
        return max(1.0, float(os.environ.get(TIMEOUT_ENV, "") or libiscsi.DEFAULT_TIMEOUT))
    except ValueError:
        return libiscsi.DEFAULT_TIMEOUT


def initiator_name() -> str:
    """This host's initiator IQN: $SMAPI_ISCSI_INITIATOR, else open-iscsi's, else a fixed userspace name."""
    name = os.environ.get(INITIATOR_ENV, "").strip()
    if name:
        return name
    try:
        with open("/etc/iscsi/initiatorname.iscsi") as f:
            for line in f:
                if line.startswith("InitiatorName="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return libiscsi.DEFAULT_INITIATOR


def typed(failure: IscsiFailure, hint: str = "") -> Backend_error:
    message = str(failure) + (f"; {hint}" if hint else "")
    if failure.kind == "chap":
        message += " (check chapuser/chappassword, and incoming_chap* for mutual CHAP)"
    return Backend_error.classic(_KIND_TO_ERROR.get(failure.kind, "ISCSILogin"), message)


def targets(portal: Portal, chap: Chap) -> List[Tuple[str, List[str]]]:
    try:
        return libiscsi.discover_targets(portal, chap, initiator=initiator_name(), timeout=timeout())
    except IscsiFailure as e:
        if e.kind in ("login", "chap"):
            raise Backend_error.classic("ISCSIDiscovery", f"SendTargets on {portal}: {e}") from None
        raise typed(e) from None


def luns(portal: Portal, iqn: str, chap: Chap) -> List[LunInfo]:
    try:
        return libiscsi.list_luns(portal, iqn, chap, initiator=initiator_name(), timeout=timeout())
    except IscsiFailure as e:
        raise typed(e) from None


def on_portals(portals: Sequence[Portal], attempt: Callable[[Portal], T]) -> Tuple[Portal, T]:
    """The first portal on which `attempt` succeeds, with its result; else one typed error naming every portal tried.

    Its code is that of the first portal that answered but refused (CHAP, IQN, LUN: the configuration is wrong
    there), else ISCSITarget (none answered).
    """
    failures: List[Tuple[Portal, Backend_error]] = []
    for portal in portals:
        try:
            return portal, attempt(portal)
        except Backend_error as e:
            failures.append((portal, e))
    if len(failures) == 1:
        raise failures[0][1]
    unreachable = Backend_error.classic("ISCSITarget").classic_code
    chosen = next((e for _, e in failures if e.classic_code != unreachable), failures[0][1])
    detail = "; ".join(f"portal {p}: {' '.join(x for x in e.backend_params if x)}" for p, e in failures)
    raise Backend_error(chosen.code, ["", f"every portal failed ({len(failures)} tried): {detail}", ""])


def resolve_any(target: IscsiTarget) -> Tuple[IscsiTarget, LunInfo]:
    """`resolve` on the target's portals in order: the target with the first portal that logged in, and the LUN."""
    portal, info = on_portals(target.portals or (target.portal,), lambda p: resolve(replace(target, portal=p)))
    return target.with_portal(portal), info


def resolve(target: IscsiTarget) -> LunInfo:
    """The LUN the configuration names, after a real login (so secrets, IQN and LUN are all checked)."""
    found = luns(target.portal, target.iqn, target.chap)
    for info in found:
        if target.scsi_id and info.scsi_id == target.scsi_id:
            if target.lun is not None and target.lun != info.lun:
                raise Backend_error.classic("ConfigSCSIid", f"SCSIid {target.scsi_id} is LUN {info.lun} of "
                                                            f"{target.iqn}, not LUNid {target.lun}")
            return info
        if not target.scsi_id and info.lun == target.lun:
            return info
    listing = ", ".join(f"LUN {i.lun} (SCSIid {i.scsi_id})" for i in found) or "none"
    if target.scsi_id:
        raise Backend_error.classic("ConfigSCSIid", f"{target.iqn} at {target.portal} has no LUN with SCSIid "
                                                    f"{target.scsi_id}; its LUNs: {listing}")
    raise Backend_error.classic("ConfigLUNMissing", f"{target.iqn} at {target.portal} has no LUN {target.lun}; "
                                                    f"its LUNs: {listing}")
