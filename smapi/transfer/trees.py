"""VDI trees for expose_forest and number_of_ip_addresses_needed.

smapi has no VMs: the API's "VM uuids" name VDIs, and each names the tree it belongs to, i.e. the VDI that is not
a snapshot (its root: follow `snapshot_of`) and every snapshot of it. One tree is what the Transfer VM exposed
with one VM, hence one address.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from smapi.interface.errors import SnapshotTreeTooLong
from smapi.transfer.locate import LocatedVdi, find_vdi, sr_vdis

MAX_SNAPSHOTS = 14  # the Transfer VM's MAX_SNAPSHOT_LENGTH: 15 snapshots or more are refused


def _root(vdi: str, by_uuid: Dict[str, dict]) -> str:
    seen = set()
    while vdi in by_uuid and by_uuid[vdi].get("snapshot_of") and vdi not in seen:
        seen.add(vdi)
        parent = by_uuid[vdi]["snapshot_of"]
        if parent not in by_uuid:
            break  # the original is gone: the snapshot is its own tree's root
        vdi = parent
    return vdi


def trees(uuids: List[str]) -> Dict[Tuple[str, str], List[LocatedVdi]]:
    """(sr, root vdi) -> the VDIs of that tree, root first; SnapshotTreeTooLong past 14 snapshots."""
    out: Dict[Tuple[str, str], List[LocatedVdi]] = {}
    for uuid in uuids:
        located = find_vdi(uuid)
        records = {r["vdi"]: r for r in sr_vdis(located)}
        root = _root(uuid, records)
        key = (located.sr, root)
        if key in out:
            continue
        members = [v for v in sorted(records) if v != root and _root(v, records) == root]
        if len(members) > MAX_SNAPSHOTS:
            raise SnapshotTreeTooLong(f"VDI {root} has {len(members)} snapshots (at most {MAX_SNAPSHOTS})")
        out[key] = [LocatedVdi(located.sr, v, located.driver_ref, records[v]) for v in [root, *members]]
    return out


def snapshot_count(located: LocatedVdi) -> int:
    records = {r["vdi"]: r for r in sr_vdis(located)}
    root = _root(located.vdi, records)
    return sum(1 for v in records if v != root and _root(v, records) == root)
