"""SMAPIv3 SR.probe for the iSCSI driver: discovery answers as probe entries instead of the classic XML.

Everything else of SMAPIv3 is the generic adapter over the storage interface (`smapi.core.v3_adapter`).
"""

from __future__ import annotations

from typing import Any, Dict, List

from smapi.core.v3_adapter import SROnStorage
from smapi.drivers.iscsi import discovery, probe
from smapi.drivers.iscsi.config import parse_target


class IscsiSROnStorage(SROnStorage):
    def probe(self, dbg: str, configuration: Dict[str, str]) -> List[Dict[str, Any]]:
        target = parse_target(configuration, need_lun=False)
        if not target.iqn:
            portal, found = discovery.on_portals(target.portals, lambda p: discovery.targets(p, target.chap))
            return probe.target_entries(configuration, portal, found)
        if target.lun is None and not target.scsi_id:
            _, luns = discovery.on_portals(target.portals, lambda p: discovery.luns(p, target.iqn, target.chap))
            return probe.lun_entries(configuration, luns)
        return super().probe(dbg, configuration)
