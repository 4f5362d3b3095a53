"""What the SR engine needs from the place where bytes live.

A substrate holds named volumes (one per image), the SR's metadata documents and its lock files. The engine is
written only against this contract, so the same snapshot/GC/journal code runs on a directory (file and NFS SRs)
and on an LVM volume group (LVM and iSCSI SRs).

`Substrate` is an abstract base class: the abstract methods are what every substrate must provide (a class that
misses one cannot be instantiated). The optional capabilities below them have a documented default that suits a
substrate without the capability; a substrate that has it overrides the whole group:

* temporary files of interrupted writes: `sweep_temp_files` (default: none);
* caches of volume state: `refresh` (default: nothing cached);
* what a datapath serves: `datapath_image` (default: files in one directory);
* volumes prepared for a read-write server (LVM thin): `prepares_writers`, `writer_needs_preparation`,
  `prepare_writer`, `finish_writer` (default: no preparation);
* a space reserve inside the SR's own storage: `reserve_path` (default: none, documents live elsewhere);
* host-local lock files to sweep: `local_lock_dir` (default: none);
* hosts sharing the SR: `prepare_activation`, `activation_lease`, `active_elsewhere` (default: a host-local SR
  needs no lease).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple

from smapi.sr.locks import FileLock
from smapi.vhd import Backing, ParentResolver

if TYPE_CHECKING:
    from smapi.datapath.model import ImageSpec


class Substrate(ABC):
    """The contract of a substrate; every method must be safe to call from many processes."""

    #: SR metadata document name
    SR_DOCUMENT = "sr"

    # -- the SR as a whole ------------------------------------------------------------------------------------
    @abstractmethod
    def exists(self) -> bool:
        """True when an SR has been created here (its SR document exists)."""

    @abstractmethod
    def initialise(self) -> None:
        """Prepare empty storage for a new SR (directories, volume group...)."""

    @abstractmethod
    def wipe(self, volumes: Collection[str]) -> None:
        """Remove the SR (SR.destroy): its documents, its locks and `volumes`, the volumes its SR document and
        journal own; nothing else that happens to share the storage."""

    @abstractmethod
    def space(self) -> Tuple[int, int]:
        """(total, free) bytes available to volumes."""

    @abstractmethod
    def describe(self) -> Dict[str, str]:
        """A device_config that reaches this SR again."""

    @abstractmethod
    def probe(self) -> Sequence[Substrate]:
        """SRs found at or directly below this location."""

    # -- volumes ----------------------------------------------------------------------------------------------
    @abstractmethod
    def volume_name(self, uuid: str, fmt: str) -> str:
        """The name a VDI's image has here (also what a VHD child's parent locator stores)."""

    @abstractmethod
    def create_volume(self, name: str, size: int = 0) -> Backing:
        """A new, writable, zero-filled volume of `size` bytes; fails if the name exists."""

    @abstractmethod
    def open_volume(self, name: str, *, writable: bool = False) -> Backing:
        ...

    @abstractmethod
    def volume_exists(self, name: str) -> bool:
        ...

    @abstractmethod
    def resize_volume(self, name: str, size: int) -> None:
        ...

    @abstractmethod
    def rename_volume(self, old: str, new: str) -> None:
        """Atomically give a volume a new name (replacing any volume called `new`)."""

    @abstractmethod
    def remove_volume(self, name: str) -> None:
        """Remove a volume; absent volumes are not an error (removal is replayed after crashes)."""

    @abstractmethod
    def list_volumes(self) -> List[str]:
        ...

    @abstractmethod
    def volume_utilisation(self, name: str) -> int:
        """Bytes the volume occupies on the storage."""

    @abstractmethod
    def volume_url(self, name: str) -> str:
        ...

    @abstractmethod
    def volume_path(self, name: str) -> str:
        """What a datapath opens (a file or device path)."""

    @abstractmethod
    def resolver(self) -> ParentResolver:
        """Maps the parent names stored in VHD locators to volumes of this substrate."""

    # -- metadata documents (stored atomically) ----------------------------------------------------------------
    @abstractmethod
    def load_document(self, key: str) -> Optional[Dict[str, Any]]:
        ...

    @abstractmethod
    def store_document(self, key: str, value: Dict[str, Any]) -> None:
        """Replace the document atomically and durably: readers see the old or the new one, never a mix."""

    @abstractmethod
    def remove_document(self, key: str) -> None:
        ...

    @abstractmethod
    def list_documents(self, prefix: str) -> List[str]:
        ...

    # -- locks --------------------------------------------------------------------------------------------------
    @abstractmethod
    def lock(self, name: str) -> FileLock:
        """A lock every host and process using this SR agrees on."""

    # -- optional capabilities: the defaults suit a substrate without them ----------------------------------------

    def sweep_temp_files(self) -> List[str]:
        """Remove temporary files that writers killed half way left (smapi.common.files); returns their names.
        Called at SR.attach and SR.scan. A substrate whose documents are not files has none."""
        return []

    def refresh(self) -> None:
        """Forget what this object cached about the volumes (another process may have changed them since): a
        long-lived engine (an upload's writer) calls it under the SR lock before changing volumes. Default: nothing is
        cached."""
        return None

    def datapath_image(self, name: str, fmt: str) -> ImageSpec:
        """What the datapath serves for a VDI whose leaf is volume `name` ("vhd" or "raw").

        The default suits substrates whose volumes are files in one directory (parents found beside the leaf);
        others (LVM: parents are LVs, VHDs need activation) override it.
        """
        from smapi.datapath.model import ImageSpec

        path = self.volume_path(name)
        return ImageSpec(fmt, path, os.path.dirname(path) if fmt == "vhd" else None)

    def prepares_writers(self) -> bool:
        """True when some volume of this substrate may need `prepare_writer` (then every server stop looks for
        a journaled preparation to undo; without it, stops spare that metadata read)."""
        return False

    def writer_needs_preparation(self, name: str, fmt: str) -> bool:
        """True when a read-write datapath of volume `name` needs `prepare_writer` first and `finish_writer` after
        (LVM thin: the leaf is inflated while served). The engine journals the pair so a crash is undone."""
        return False

    def prepare_writer(self, name: str, fmt: str) -> None:
        """Make volume `name` ready for a read-write server (idempotent)."""
        return None

    def finish_writer(self, name: str, fmt: str) -> None:
        """Undo `prepare_writer` once no server writes volume `name` (idempotent; absent volumes are no error)."""
        return None

    def reserve_path(self) -> Optional[str]:
        """A file holding back a little of the space the documents are written in (`smapi.sr.reserve`), or None
        when the documents do not share the volumes' space (LVM: the MGT volume)."""
        return None

    # -- hosts sharing the SR (host-local substrates keep these defaults) ----------------------------------------
    def prepare_activation(self, vdi: str) -> None:
        """VDI.attach: set up what `activation_lease` will need (formatting a lease), so that VDI.activate, which
        a VM's start waits for, only takes it. Nothing by default."""
        return None

    def activation_lease(self, vdi: str, *, readonly: bool) -> Optional[Callable[[int], None]]:
        """What takes VDI `vdi`'s activation lease for its datapath server (called with the server's pid once it is
        ready; raises Activated_on_another_host when another host has the VDI active). None: no lease needed."""
        return None

    def active_elsewhere(self, vdi: str) -> Optional[str]:
        """The other host (named for a message) whose datapath server has `vdi` active, else None."""
        return None

    def local_lock_dir(self) -> Optional[str]:
        """The directory of this SR's lock files when they are plain host-local files (stale ones are swept at
        attach and scan), or None when the locks are something else (leases shared by hosts, ...)."""
        return None
