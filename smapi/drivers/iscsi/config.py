"""The iSCSI driver's device_config: where the target is, which LUN, and the CHAP secrets.

Key names follow the classic LVM-over-iSCSI SR, so a PBD written for it works here. `parse_target` accepts the
probe stages: with only `target` the caller wants the target list, with `targetIQN` the LUN list, with a LUN the
SRs on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple

from smapi.drivers.iscsi.libiscsi import Chap, Portal
from smapi.interface.errors import Backend_error

DEFAULT_PORT = 3260

#: documented in Query.query's `configuration`
CONFIGURATION = {
    "target": "The target's portal: host name or IP address, optionally with :port ([v6]:port for IPv6); several "
              "comma-separated portals are tried in order. SR.probe with only this lists the target IQNs "
              "(SendTargets)",
    "port": "The portal's TCP port (default 3260; a :port in target wins)",
    "targetIQN": "The target's IQN. SR.probe with target and targetIQN lists its LUNs (vendor, serial, size, "
                 "SCSI id)",
    "SCSIid": "The LUN holding the SR, by SCSI id (as udev's scsi_id prints it; shown by SR.probe). SR.probe "
              "with a LUN lists the SRs on it",
    "LUNid": "The LUN holding the SR, by LUN number (SCSIid is preferred: it survives LUN renumbering)",
    "chapuser": "CHAP user name the initiator logs in with (one-way CHAP)",
    "chappassword": "CHAP secret of chapuser",
    "incoming_chapuser": "Mutual CHAP: the user name the target must authenticate itself with",
    "incoming_chappassword": "Mutual CHAP: the target's secret",
    "provisioning": "thick (default) or thin VHD provisioning of the volume group on the LUN (as the lvm driver)",
    "force": "true to let SR.create overwrite a LUN holding data",
}

#: keys that never leave this host's memory (the run directory keeps no secret)
SECRET_KEYS = ("chappassword", "incoming_chappassword")


@dataclass(frozen=True)
class IscsiTarget:
    #: the portal to use (the first of `portals` until `with_portal` picks the one that answered)
    portal: Portal
    iqn: str
    lun: Optional[int]
    scsi_id: str
    chap: Chap
    #: every portal of the configuration, in the order they are tried
    portals: Tuple[Portal, ...] = ()

    def with_portal(self, portal: Portal) -> IscsiTarget:
        return replace(self, portal=portal)

    def where(self) -> str:
        what = f"LUN {self.lun}" if self.lun is not None else f"SCSIid {self.scsi_id}"
        return f"{self.iqn} {what} at {self.portal}"


def _one_portal(raw: str, port_text: str) -> Portal:
    host = raw
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest.startswith(":"):
            port_text = rest[1:]
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise Backend_error.classic("ISCSIPort", f"port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise Backend_error.classic("ISCSIPort", f"port {port} is out of range (1-65535)")
    return Portal(host, port)


def parse_portals(device_config: Dict[str, str]) -> Tuple[Portal, ...]:
    """Every portal of `target` (comma-separated, as the classic driver takes them), in order, no duplicates."""
    raw = (device_config.get("target") or "").strip()
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise Backend_error.classic("ConfigTargetMissing", "device_config needs target=<host>[:port][,<host>...]")
    port_text = (device_config.get("port") or "").strip()
    out = []
    for part in parts:
        portal = _one_portal(part, port_text)
        if portal not in out:
            out.append(portal)
    return tuple(out)


def _portal(device_config: Dict[str, str]) -> Portal:
    return parse_portals(device_config)[0]


def chap_of(device_config: Dict[str, str]) -> Chap:
    chap = Chap(device_config.get("chapuser", ""), device_config.get("chappassword", ""),
                device_config.get("incoming_chapuser", ""), device_config.get("incoming_chappassword", ""))
    if bool(chap.user) != bool(chap.password):
        raise Backend_error.classic("ISCSILogin", "chapuser and chappassword go together: give both or neither")
    if bool(chap.incoming_user) != bool(chap.incoming_password):
        raise Backend_error.classic("ISCSILogin", "incoming_chapuser and incoming_chappassword go together")
    if chap.incoming_user and not chap.user:
        raise Backend_error.classic("ISCSILogin", "mutual CHAP (incoming_chap*) needs chapuser/chappassword too")
    return chap


def parse_portal(device_config: Dict[str, str]) -> Portal:
    return _portal(device_config)


def parse_target(device_config: Dict[str, str], *, need_lun: bool = True) -> IscsiTarget:
    """The full configuration; `need_lun=False` for probing (IQN and LUN may be missing then)."""
    portals = parse_portals(device_config)
    chap = chap_of(device_config)
    iqn = (device_config.get("targetIQN") or "").strip()
    if need_lun and not iqn:
        raise Backend_error.classic("ConfigTargetIQNMissing", "device_config needs targetIQN (SR.probe with "
                                                              "target lists them)")
    lun: Optional[int] = None
    raw_lun = (device_config.get("LUNid") or "").strip()
    if raw_lun:
        try:
            lun = int(raw_lun)
        except ValueError:
            raise Backend_error.classic("ConfigLUNMissing", f"LUNid {raw_lun!r} is not a number") from None
    scsi_id = (device_config.get("SCSIid") or "").strip()
    if need_lun and lun is None and not scsi_id:
        raise Backend_error.classic("ConfigSCSIid", "device_config needs SCSIid (or LUNid); SR.probe with target "
                                                    "and targetIQN lists the LUNs")
    return IscsiTarget(portals[0], iqn, lun, scsi_id, chap, portals)


def without_secrets(device_config: Dict[str, str]) -> Dict[str, str]:
    return {k: v for k, v in device_config.items() if k not in SECRET_KEYS}
