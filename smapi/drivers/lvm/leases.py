"""A shared LVM SR's sanlock leases: one LV, ``leases``, reached as (PV, byte offset) through its segment map.

    slot 0     the lockspace `smapi-<sr>` (one 512-byte sector per host id)
    slot 1     `sr`, the SR lease
    slot 2     `gc`, the collector's lease
    slot 3...  resources assigned on first use (`vdi-<uuid>`, `act-<uuid>`)

Slot n is LV bytes [n MiB, (n+1) MiB) (client.LEASE_SIZE); extents are whole MiB, so a slot never straddles two PVs
and its (PV, offset) comes from the extent holding its first byte. The LV is made at SR.create with the lockspace,
`sr` and `gc` formatted; no device-mapper is involved (sanlock does O_DIRECT I/O on the PV at that offset).

Which slot holds which resource is the MGT document ``sanlock/slots`` ({name: slot}). A resource's slot is
assigned, formatted and indexed under the SR lease, so exactly one host formats it; a slot is given to a new
resource when it is not indexed, or when its resource is a VDI's that no longer exists and nobody holds it (so
slots never grow beyond what live VDIs need). When no slot is free the LV grows (lvextend, under the SR lease).
Each process caches name -> slot; a cached slot is only ever reused for another name once its VDI is gone.

Host ids: `device_config` `host_id`, else the one this host had (recorded in its run directory with the name of
its sanlock daemon), else the lowest free slot of the lockspace (read from storage). sanlock's acquisition of the
host id's delta lease is what makes the choice safe: two hosts that try one id at once see HOSTID_BUSY but one,
and the loser tries the next. After joining, the id is recorded under the SR lease in the MGT document
``sanlock/hosts`` ({id: host identity}) for messages naming another host.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

from smapi.drivers.lvm.lvmcli import size_arg
from smapi.drivers.lvm.segmap import Extent, build_map
from smapi.drivers.lvm.substrate import LEASES_LV
from smapi.interface.errors import Backend_error
from smapi.sr.runstate import run_dir
from smapi.sr.sanlock import client
from smapi.sr.sanlock.client import LEASE_SIZE, Area, SanlockError
from smapi.sr.sanlock.pool import LeaseStore

if TYPE_CHECKING:
    from smapi.drivers.lvm.shared import SharedVolumeGroupSubstrate

LOCKSPACE_SLOT = 0
FIXED = {"sr": 1, "gc": 2}
FIRST_FREE = 3
#: slots of a new SR (16 MiB: lockspace, sr, gc and 13 VDI leases) and how many more each growth adds
INITIAL_SLOTS = 16
GROWTH_SLOTS = 16
SLOTS_DOC = "sanlock/slots"
HOSTS_DOC = "sanlock/hosts"
#: resources named after a VDI: their slot is reused once the VDI is gone
_PER_VDI = ("vdi-", "act-")

#: this process's name -> slot, per SR (a slot changes name only once its VDI is gone: see the module docstring)
_slots: Dict[str, Dict[str, int]] = {}
_slots_lock = threading.Lock()


class VgLeaseStore(LeaseStore):
    def __init__(self, substrate: SharedVolumeGroupSubstrate, sr: str) -> None:
        self.sub = substrate
        self.sr = sr
        self._extents: Optional[List[Extent]] = None
        #: SR.attach sets it: only then may `host_id` join the lockspace to find a free host id
        self.may_join = False

    # -- where slots are --------------------------------------------------------------------------------------
    def _map(self, fresh: bool = False) -> List[Extent]:
        if self._extents is None or fresh:
            if fresh:
                self.sub.refresh()
            rows = self.sub._all_segments().get(LEASES_LV)
            if not rows:
                raise Backend_error.classic("SRUnavailable", f"volume group {self.sub.vg} has no {LEASES_LV} volume: "
                                                             "not a shared SR, or one whose SR.create did not finish")
            self._extents = build_map(rows, self.sub._pe_starts(), self.sub.extent_size)
        return self._extents

    def slot_count(self, fresh: bool = False) -> int:
        return self._map(fresh)[-1].lv_end // LEASE_SIZE

    def area(self, slot: int) -> Area:
        offset = slot * LEASE_SIZE
        for fresh in (False, True):  # another host may have grown the LV since this process read its map
            for e in self._map(fresh):
                if e.lv_offset <= offset < e.lv_end:
                    return Area(e.pv, e.pv_offset + offset - e.lv_offset)
        raise Backend_error.classic("SRUnavailable", f"lease slot {slot} lies beyond the {LEASES_LV} volume")

    # -- made at SR.create --------------------------------------------------------------------------------------
    def format_new(self, lockspace: str) -> None:
        """SR.create: the leases LV with the lockspace, `sr` and `gc` formatted (nobody can use the SR yet)."""
        vg = self.sub._need_vg()
        if LEASES_LV not in self.sub._all_segments():  # else a create that died half-way made it: format it again
            self.sub._change("lvcreate", "-an", "-Zn", "-Wn", "-y", "-L", size_arg(INITIAL_SLOTS * LEASE_SIZE),
                             "-n", LEASES_LV, vg)
        client.write_lockspace(lockspace, self.area(LOCKSPACE_SLOT))
        for name, slot in FIXED.items():
            client.write_resource(lockspace, name, self.area(slot))

    # -- LeaseStore ---------------------------------------------------------------------------------------------
    def lockspace_area(self, lockspace: str) -> Area:
        return self.area(LOCKSPACE_SLOT)

    def existing_resource_area(self, name: str) -> Optional[Area]:
        slot = FIXED.get(name)
        if slot is None:
            slot = self._cached(name)
        if slot is None:
            slot = self._index().get(name)
            if slot is not None:
                self._remember(name, slot)
        return None if slot is None else self.area(slot)

    def resource_area(self, name: str, lockspace: str) -> Area:
        area = self.existing_resource_area(name)
        if area is not None:
            return area
        with self.sub.sr_held():
            return self._assign(name, lockspace)

    def _assign(self, name: str, lockspace: str) -> Area:
        """Under the SR lease: the slot of `name`, assigned and formatted now if nobody did it before."""
        index = self._index()
        slot = index.get(name)
        if slot is not None and _named(self.area(slot), name):
            self._remember(name, slot)
            return self.area(slot)
        slot = self._free_slot(index, lockspace)
        area = self.area(slot)
        client.write_resource(lockspace, name, area)
        index[name] = slot
        self.sub.store_document(SLOTS_DOC, index)
        self._remember(name, slot)
        return area

    def _free_slot(self, index: Dict[str, int], lockspace: str) -> int:
        used = set(index.values())
        count = self.slot_count(fresh=True)  # another host may have grown the LV since this process looked
        free = [s for s in range(FIRST_FREE, count) if s not in used]
        if free:
            return free[0]
        reclaimed = self._reclaim(index, lockspace)
        if reclaimed is not None:
            return reclaimed
        self.sub._change("lvextend", "-L", size_arg((count + GROWTH_SLOTS) * LEASE_SIZE),
                         f"{self.sub._need_vg()}/{LEASES_LV}")
        self._map(fresh=True)
        return max(FIRST_FREE, count)

    def _reclaim(self, index: Dict[str, int], lockspace: str) -> Optional[int]:
        """A slot of a VDI that no longer exists and whose lease nobody holds, dropped from `index`."""
        doc = self.sub.load_document(self.sub.SR_DOCUMENT) or {}
        live = set((doc.get("vdis") or {}).keys())
        for name, slot in sorted(index.items(), key=lambda item: item[1]):
            if not name.startswith(_PER_VDI) or name[4:] in live:
                continue
            with contextlib.suppress(SanlockError):
                if not client.owners(lockspace, name, self.area(slot)).hosts:
                    del index[name]
                    return slot
        return None

    def _index(self) -> Dict[str, int]:
        return {str(k): int(v) for k, v in (self.sub.load_document(SLOTS_DOC) or {}).items()}

    def _cached(self, name: str) -> Optional[int]:
        with _slots_lock:
            return _slots.get(self.sr, {}).get(name)

    def _remember(self, name: str, slot: int) -> None:
        with _slots_lock:
            _slots.setdefault(self.sr, {})[name] = slot

    # -- host ids -----------------------------------------------------------------------------------------------
    def host_id(self, identity: str) -> int:
        lockspace = self.sub.pool().lockspace
        area = self.lockspace_area(lockspace)
        mine = self._recorded()
        if mine is not None and (not self.may_join or client.joined(lockspace, mine[0], area)):
            return mine[0]
        if not self.may_join:
            raise Backend_error.classic("SRUnavailable", f"SR {self.sr} is not attached on this host (it has no host "
                                                         "id in the SR's lockspace): SR.attach first")
        for host_id in self._candidates(area, mine, identity):
            try:
                client.add_lockspace(lockspace, host_id, area)
            except SanlockError as e:
                if e.rv == client.HOSTID_BUSY:
                    continue  # another host took it meanwhile: sanlock told us, try the next
                raise
            owner = client.lockspace_slots(area, host_id)[-1].owner
            self._record(host_id, owner)
            return host_id
        raise Backend_error.classic("SRUnavailable", f"SR {self.sr}: all {client.MAX_HOSTS} host ids of its lockspace "
                                                     "are in use (or held by dead hosts until they expire)")

    def _candidates(self, area: Area, mine: Optional[Tuple[int, str]], identity: str) -> Iterator[int]:
        """Ids worth trying: this host's previous one while its slot is free or still its daemon's (sanlock then
        takes it back at once), then the free ones, those no other host ever had first."""
        slots = client.lockspace_slots(area)
        if mine is not None:
            previous = slots[mine[0] - 1]
            if previous.timestamp == 0 or previous.owner == mine[1]:
                yield previous.host_id
        known = self.host_names()
        free = [s.host_id for s in slots if s.timestamp == 0]
        yield from [h for h in free if known.get(h) == identity]
        yield from [h for h in free if h not in known]
        yield from [h for h in free if h in known and known[h] != identity]

    def record_host(self, host_id: int, identity: str) -> None:
        """After joining, under the SR lease: `sanlock/hosts` says `host_id` is this host (and no other id is)."""
        with self.sub.sr_held():
            hosts = {k: v for k, v in (self.sub.load_document(HOSTS_DOC) or {}).items() if v != identity}
            hosts[str(host_id)] = identity
            self.sub.store_document(HOSTS_DOC, hosts)

    def host_names(self) -> Dict[int, str]:
        return {int(k): str(v) for k, v in (self.sub.load_document(HOSTS_DOC) or {}).items()}

    def _record_path(self) -> str:
        return os.path.join(run_dir(), "sanlock", f"{self.sr}.host")

    def _recorded(self) -> Optional[Tuple[int, str]]:
        """(host id, name of this host's daemon) this host last joined the lockspace with."""
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            with open(self._record_path()) as f:
                found = json.load(f)
            host_id = int(found["host_id"])
            if 1 <= host_id <= client.MAX_HOSTS:
                return host_id, str(found.get("owner", ""))
        return None

    def _record(self, host_id: int, owner: str) -> None:
        path = self._record_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"host_id": host_id, "owner": owner}, f)
        os.replace(tmp, path)


def _named(area: Area, name: str) -> bool:
    """The slot's lease is formatted for `name` (an index entry another host wrote before dying is re-checked)."""
    try:
        found = client.read_resource(area)
    except SanlockError:
        return False
    return found is not None and found[1] == name
