"""SR.probe's discovery answers, in the classic XML documents and as SMAPIv3 probe entries.

The classic LVM-over-iSCSI SR prints `<iscsi-target-iqns>` (one `<TGT>` per target) when only `target` is given
and `<iscsi-target>` (one `<LUN>` per LUN) when `targetIQN` is given too; toolstacks and UIs parse both.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple
from xml.dom import minidom

from smapi.drivers.iscsi.config import without_secrets
from smapi.drivers.iscsi.libiscsi import LunInfo, Portal


def _portal_of(text: str, default: Portal) -> Tuple[str, int]:
    """'127.0.0.1:3260,1' (address:port,tpgt; IPv6 in brackets) -> (address, port)."""
    addr = text.split(",")[0]
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        return default.host, default.port
    return host.strip("[]"), int(port)


def _document(root: str, entries: List[Tuple[str, List[Tuple[str, Any]]]]) -> str:
    dom = minidom.Document()
    top = dom.createElement(root)
    dom.appendChild(top)
    for name, fields in entries:
        entry = dom.createElement(name)
        top.appendChild(entry)
        for key, value in fields:
            if value == "" or value is None:
                continue
            sub = dom.createElement(key)
            sub.appendChild(dom.createTextNode(str(value)))
            entry.appendChild(sub)
    return dom.toprettyxml()


def targets_xml(portal: Portal, found: List[Tuple[str, List[str]]]) -> str:
    entries: List[Tuple[str, List[Tuple[str, Any]]]] = []
    for iqn, portals in found:
        for text in portals or [str(portal)]:
            host, port = _portal_of(text, portal)
            entries.append(("TGT", [("Index", len(entries)), ("IPAddress", host), ("Port", port),
                                    ("TargetIQN", iqn)]))
    return _document("iscsi-target-iqns", entries)


def luns_xml(luns: List[LunInfo]) -> str:
    return _document("iscsi-target", [("LUN", [("vendor", i.vendor), ("serial", i.serial), ("LUNid", i.lun),
                                               ("size", i.size), ("SCSIid", i.scsi_id)]) for i in luns])


def target_entries(device_config: Dict[str, str], portal: Portal,
                   found: List[Tuple[str, List[str]]]) -> List[Dict[str, Any]]:
    """SMAPIv3 entries: one configuration per target (secrets are left for the caller to add back)."""
    base = without_secrets(device_config)
    return [{"configuration": {**base, "targetIQN": iqn}, "complete": False,
             "extra_info": {"targetIQN": iqn, "portals": ",".join(portals)}} for iqn, portals in found]


def lun_entries(device_config: Dict[str, str], luns: List[LunInfo]) -> List[Dict[str, Any]]:
    base = {k: v for k, v in without_secrets(device_config).items() if k not in ("LUNid", "SCSIid")}
    return [{"configuration": {**base, "SCSIid": i.scsi_id, "LUNid": str(i.lun)}, "complete": False,
             "extra_info": {"vendor": i.vendor, "product": i.product, "serial": i.serial, "LUNid": str(i.lun),
                            "size": str(i.size), "SCSIid": i.scsi_id}} for i in luns]
