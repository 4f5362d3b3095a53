"""The SR document: the SR's own names and one record per image (visible VDI or hidden base copy).

The document is the source of truth for the VDI tree: names, descriptions, flags, content ids, sm_config and
parent links. The VHD headers agree with it (the engine writes both inside journaled operations), and a fresh
host rebuilds everything it needs from this document alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from smapi.interface.storage import EPOCH

FORMAT_VERSION = 1

#: vdi_info fields a caller may set and the SR stores as given
USER_FIELDS = ("content_id", "name_label", "name_description", "ty", "metadata_of_pool", "is_a_snapshot",
               "snapshot_time", "snapshot_of", "read_only", "persistent", "sm_config")


@dataclass
class VdiRecord:
    uuid: str
    format: str  # "vhd" | "raw"
    volume: str
    virtual_size: int
    parent: Optional[str] = None
    hidden: bool = False
    content_id: str = ""
    name_label: str = ""
    name_description: str = ""
    ty: str = "user"
    metadata_of_pool: str = ""
    is_a_snapshot: bool = False
    snapshot_time: str = EPOCH
    snapshot_of: str = ""
    read_only: bool = False
    persistent: bool = True
    sm_config: Dict[str, str] = field(default_factory=dict)
    #: changed-block tracking is on (a leaf: its writes are recorded in its CBT log, `smapi.sr.cbtlog`; a
    #: snapshot: it is a point of its VDI's log)
    cbt_enabled: bool = False

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> VdiRecord:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class SrDocument:
    uuid: str
    name_label: str = ""
    name_description: str = ""
    created: float = field(default_factory=time.time)
    vdis: Dict[str, VdiRecord] = field(default_factory=dict)
    options: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> SrDocument:
        return cls(
            uuid=d["uuid"], name_label=d.get("name_label", ""), name_description=d.get("name_description", ""),
            created=d.get("created", 0.0), options=dict(d.get("options", {})),
            vdis={k: VdiRecord.from_dict(v) for k, v in d.get("vdis", {}).items()},
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "version": FORMAT_VERSION, "uuid": self.uuid, "name_label": self.name_label,
            "name_description": self.name_description, "created": self.created, "options": self.options,
            "vdis": {k: v.to_dict() for k, v in sorted(self.vdis.items())},
        }

    # -- the tree ---------------------------------------------------------------------------------------------
    def children(self, uuid: str) -> List[VdiRecord]:
        return [r for r in self.vdis.values() if r.parent == uuid]

    def ancestors(self, uuid: str) -> List[str]:
        """Parent, grandparent... of `uuid` (stops at a missing record or a loop)."""
        out: List[str] = []
        cur = self.vdis.get(uuid)
        while cur is not None and cur.parent and cur.parent not in out:
            out.append(cur.parent)
            cur = self.vdis.get(cur.parent)
        return out

    def depth(self, uuid: str) -> int:
        """Images in the chain of `uuid`, itself included."""
        return 1 + len(self.ancestors(uuid))

    def visible(self) -> List[VdiRecord]:
        return [r for r in self.vdis.values() if not r.hidden]
