"""The directory substrate: volumes are files in one directory (file SRs, and NFS SRs over a mount).

Layout of `<path>`:

    sr.json                the SR document (uuid, names, every VDI record)
    <uuid>.vhd, <uuid>.raw one file per image
    .journal/<id>.json     intents of multi-step operations not yet finished
    .locks/                lock files (sr, gc, vdi-<uuid>)

Documents are written with `smapi.common.files.atomic_write` (temporary file, fsync, rename over the old one,
directory fsync), so a crash leaves either version, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from typing import Any, Collection, Dict, List, Optional, Tuple

from smapi.common.calllog import note
from smapi.common.files import fsync_dir, read_json, sweep_temp_files, write_json
from smapi.interface.errors import Backend_error
from smapi.sr.locks import FileLock
from smapi.sr.names import check_component
from smapi.sr.substrate import Substrate
from smapi.vhd import Backing, DirectoryResolver, FileBacking, ParentResolver

EXTENSIONS = {"vhd": ".vhd", "raw": ".raw"}
JOURNAL_DIR = ".journal"
LOCK_DIR = ".locks"
#: changed-block tracking logs (documents `cbt/<vdi>`, smapi.sr.cbtlog)
CBT_DIR = ".cbt"
#: space held back so that freeing space (VDI.destroy) still works on a full SR (see smapi.sr.reserve)
RESERVE = ".reserve"


#: documents are written by the one atomic write of smapi.common.files (the names stay importable from here)
write_json_atomically = write_json


class DirectorySubstrate(Substrate):
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    # -- the SR as a whole ------------------------------------------------------------------------------------
    def _doc_path(self, key: str) -> str:
        if key.startswith("journal/"):
            return os.path.join(self.path, JOURNAL_DIR, check_component("journal", key[len("journal/"):]) + ".json")
        if key.startswith("cbt/"):
            return os.path.join(self.path, CBT_DIR, check_component("cbt", key[len("cbt/"):]) + ".json")
        return os.path.join(self.path, check_component("document", key) + ".json")

    def exists(self) -> bool:
        return os.path.isfile(self._doc_path(self.SR_DOCUMENT))

    def initialise(self) -> None:
        os.makedirs(os.path.join(self.path, JOURNAL_DIR), exist_ok=True)
        os.makedirs(os.path.join(self.path, LOCK_DIR), exist_ok=True)

    def wipe(self, volumes: Collection[str]) -> None:
        # The SR document goes first: from then on the directory is no SR, whatever else a crash leaves.
        self.remove_document(self.SR_DOCUMENT)
        # Only what the SR owned: the directory may hold an admin's own images (never listed in the SR).
        for name in volumes:
            self.remove_volume(name)
        shutil.rmtree(os.path.join(self.path, JOURNAL_DIR), ignore_errors=True)
        shutil.rmtree(os.path.join(self.path, LOCK_DIR), ignore_errors=True)
        shutil.rmtree(os.path.join(self.path, CBT_DIR), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, RESERVE))
        with contextlib.suppress(OSError):
            os.rmdir(self.path)  # only when nothing foreign is left in it

    def space(self) -> Tuple[int, int]:
        st = os.statvfs(self.path)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def describe(self) -> Dict[str, str]:
        return {"path": self.path}

    def probe(self) -> List[Substrate]:
        found: List[Substrate] = []
        if self.exists():
            found.append(self)
        elif os.path.isdir(self.path):
            for entry in sorted(os.listdir(self.path)):
                sub = DirectorySubstrate(os.path.join(self.path, entry))
                if os.path.isdir(sub.path) and sub.exists():
                    found.append(sub)
        return found

    # -- volumes ----------------------------------------------------------------------------------------------
    def volume_name(self, uuid: str, fmt: str) -> str:
        return uuid + EXTENSIONS[fmt]

    def _vol(self, name: str) -> str:
        return os.path.join(self.path, check_component("volume", name))

    def _regular(self, name: str) -> str:
        """The path of volume `name`, refused unless it is a regular file (never a symlink: on a shared SR a
        peer could point one at this host's own files, and smapi runs as root)."""
        path = self._vol(name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path  # what opens it reports the absence in its own way
        if not stat.S_ISREG(st.st_mode):
            raise not_a_volume(name, path)
        return path

    def create_volume(self, name: str, size: int = 0) -> Backing:
        # O_CREAT | O_EXCL never follows a symlink: an existing link fails the create.
        backing = FileBacking(self._vol(name), writable=True, create=True)
        if size:
            backing.resize(size)
        return backing

    def open_volume(self, name: str, *, writable: bool = False) -> Backing:
        path = self._regular(name)
        backing = FileBacking(path, writable=writable)
        # The path may have been swapped for a link between the check and the open: what was opened must be the
        # regular file that is there now.
        opened, there = os.fstat(backing.fd), os.lstat(path)
        if (opened.st_dev, opened.st_ino) != (there.st_dev, there.st_ino) or not stat.S_ISREG(there.st_mode):
            backing.close()
            raise not_a_volume(name, path)
        return backing

    def volume_exists(self, name: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self._vol(name)).st_mode)
        except FileNotFoundError:
            return False

    def resize_volume(self, name: str, size: int) -> None:
        fd = os.open(self._regular(name), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def rename_volume(self, old: str, new: str) -> None:
        os.replace(self._vol(old), self._vol(new))
        fsync_dir(self.path)

    def remove_volume(self, name: str) -> None:
        try:
            os.unlink(self._vol(name))
        except FileNotFoundError:
            return
        fsync_dir(self.path)

    def list_volumes(self) -> List[str]:
        exts = tuple(EXTENSIONS.values())
        return sorted(n for n in os.listdir(self.path) if n.endswith(exts) and not n.startswith("."))

    def volume_utilisation(self, name: str) -> int:
        try:
            return os.lstat(self._vol(name)).st_blocks * 512
        except FileNotFoundError:
            return 0

    def volume_url(self, name: str) -> str:
        return "file://" + self._regular(name)

    def volume_path(self, name: str) -> str:
        return self._regular(name)

    def resolver(self) -> ParentResolver:
        return DirectoryResolver(self.path)

    # -- documents --------------------------------------------------------------------------------------------
    def load_document(self, key: str) -> Optional[Dict[str, Any]]:
        return read_json(self._doc_path(key))

    def store_document(self, key: str, value: Dict[str, Any]) -> None:
        path = self._doc_path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomically(path, value)

    def remove_document(self, key: str) -> None:
        path = self._doc_path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        fsync_dir(os.path.dirname(path))

    def list_documents(self, prefix: str) -> List[str]:
        if prefix != "journal/":
            raise ValueError("only journal documents are listed")
        directory = os.path.join(self.path, JOURNAL_DIR)
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted("journal/" + n[:-5] for n in names if n.endswith(".json"))

    def sweep_temp_files(self) -> List[str]:
        removed = sweep_temp_files(self.path)
        removed += [f"{JOURNAL_DIR}/{n}" for n in sweep_temp_files(os.path.join(self.path, JOURNAL_DIR))]
        removed += [f"{CBT_DIR}/{n}" for n in sweep_temp_files(os.path.join(self.path, CBT_DIR))]
        if removed:
            note(f"SR {self.path}: removed temporary files of interrupted writes: {', '.join(removed)}")
        return removed

    # -- locks --------------------------------------------------------------------------------------------------
    def lock(self, name: str) -> FileLock:
        return FileLock(os.path.join(self.path, LOCK_DIR, check_component("lock", name)))


def not_a_volume(name: str, path: str) -> Backend_error:
    return Backend_error.classic(
        "VDIUnavailable", f"volume {name} ({path}) is not a regular file (a symlink?); smapi never follows links "
                          f"inside an SR: replace it with the image itself")
