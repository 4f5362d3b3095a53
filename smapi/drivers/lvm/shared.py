"""The volume group of a shared LVM SR (tag ``shared=true``): an iSCSI LUN, or an FC/SAS LUN created with
``shared=true``, which several hosts attach at once.

The volumes, MGT and journal are exactly those of the host-local SR (`VolumeGroupSubstrate`); what differs:

* the engine's `sr`, `gc` and `vdi-<uuid>` locks are a host-local flock under a sanlock lease (smapi.sr.sanlock)
  whose slots are in the ``leases`` LV (`smapi.drivers.lvm.leases`);
* every change of the volume group's lvm metadata (lvcreate, lvremove, lvrename, lvresize, lvchange) and every
  MGT update runs under the SR lease, whoever calls it (verbs hold it already; a data handle growing a thin leaf,
  the collector's copy growing a parent, a server's stop deflating its leaf take it here): LVM has no cross-host
  locking of its own without lvmlockd, and the MGT holds all documents in one place;
* the SR document carries the SR lease's version and a save under an older one is refused (fencing);
* a VDI's datapath server holds its activation lease `act-<uuid>`.

During SR.create nobody else can reach the SR (it has no SR document yet): its steps take no lease.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ContextManager, Dict, List, Optional

from smapi.datapath.model import ImageSpec
from smapi.drivers.lvm.config import LvmConfig
from smapi.drivers.lvm.leases import VgLeaseStore
from smapi.drivers.lvm.lvmcli import Lvm
from smapi.drivers.lvm.substrate import SHARED_TAG, VG_PREFIX, VolumeGroupSubstrate
from smapi.sr.locks import FileLock
from smapi.sr.names import check_component
from smapi.sr.runstate import run_dir
from smapi.sr.sanlock.pool import SrPool, host_uuid
from smapi.sr.sanlock.shared import PooledSubstrate


class SharedVolumeGroupSubstrate(PooledSubstrate, VolumeGroupSubstrate):
    def __init__(self, config: LvmConfig, vg: Optional[str], *, lvm: Optional[Lvm] = None) -> None:
        super().__init__(config, vg, lvm=lvm)
        sr = config.sr or (vg[len(VG_PREFIX):] if vg and vg.startswith(VG_PREFIX) else "")
        self.leases = VgLeaseStore(self, sr)
        self._pool: Optional[SrPool] = None
        #: SR.create until its SR document is written: no lease is needed (nor possible: nobody joined yet)
        self._creating = False

    #: every LV opened here first drops this host's page cache of it (other hosts write the LUN too)
    uncached = True

    def pool(self) -> SrPool:
        """This SR's sanlock leases (lockspace `smapi-<sr>`, slots of the `leases` LV)."""
        if self._pool is None:
            self._pool = SrPool(self.leases.sr, self.leases, host_uuid(run_dir()), self.config.host_id)
        return self._pool

    def join(self) -> None:
        """SR.attach: join the lockspace (allocating a host id if device_config gave none), then record which host
        has the id, for messages on other hosts."""
        pool = self.pool()
        self.leases.may_join = True
        try:
            pool.join()
        finally:
            self.leases.may_join = False
        self.leases.record_host(pool.host_id(), pool.identity)

    # -- the datapath ---------------------------------------------------------------------------------------------
    def datapath_image(self, name: str, fmt: str) -> ImageSpec:
        """The server's opener drops this host's cached pages of every image of the chain it opens (the lease it
        is about to hold says no other host writes them now; earlier writes of other hosts are on the device). A
        raw volume handed out as a loop device over its PV region reads that region through the PV's cache: it
        is dropped here."""
        spec = super().datapath_image(name, fmt)
        if spec.block is not None:
            device, offset, size = spec.block
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.posix_fadvise(fd, offset, size, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        assert spec.opener is not None
        return ImageSpec.opened_by(spec.kind, spec.opener, {**spec.opener_args(), "uncached": True},
                                   description=spec.path, block=spec.block)

    # -- locks --------------------------------------------------------------------------------------------------
    def lock(self, name: str) -> FileLock:
        local = os.path.join(self._lock_dir(), check_component("lock", name))
        return FileLock(local) if self._creating else self.pool_lock(local, name)

    def sr_held(self) -> ContextManager[None]:
        """The SR lease for a change of the volume group or the MGT (re-entrant: verbs hold it already)."""
        return contextlib.nullcontext() if self._creating else self.lock("sr").hold()

    # -- SR.create ----------------------------------------------------------------------------------------------
    def tags_for_new(self) -> List[str]:
        return super().tags_for_new() + [SHARED_TAG]

    def initialise(self) -> None:
        self._creating = True
        super().initialise()
        self.leases.format_new(self.pool().lockspace)

    # -- everything that changes lvm metadata or the MGT, under the SR lease -------------------------------------
    def _change(self, command: str, *args: str) -> str:
        with self.sr_held():
            return super()._change(command, *args)

    def _lvresize(self, name: str, size: int) -> None:
        with self.sr_held():
            super()._lvresize(name, size)

    def rename_volume(self, old: str, new: str) -> None:
        with self.sr_held():
            super().rename_volume(old, new)

    def remove_volume(self, name: str) -> None:
        with self.sr_held():
            super().remove_volume(name)

    def store_document(self, key: str, value: Dict[str, Any]) -> None:
        with self.sr_held():
            if key == self.SR_DOCUMENT and not self._creating:
                value = self.fenced(self.load_document(key), value)
            super().store_document(key, value)

    def remove_document(self, key: str) -> None:
        with self.sr_held():
            super().remove_document(key)
