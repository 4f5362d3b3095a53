"""The FUSE daemon's open files: one NFS open per path, shared by every handle on it.

nfs-rs opens every file of a client with one NFSv4 open-owner. A second OPEN of a file by the same owner gets
the *same* server state (the stateid with a newer seqid), so the first opener's reads fail with
NFS4ERR_OLD_STATEID, and the first CLOSE ends the state under the other opener too. Every process of this host
reaches the export through this one daemon, so several openers of one file are the rule (nbdkit serving a VDI
while a scan reads its header; readers of a lease's `owner`). Hence one nfs-rs file per path, opened read-write
where the server allows it (a later writer then needs no upgrading OPEN), counted by its handles and closed by
the last one.

When the server says a file is gone (a stale handle: another client removed it or renamed another file over
it), a read-only handle reopens the path and reads what now has that name, as a fresh open would; a handle
opened for writing gets ESTALE from then on: writing into the replacement would be wrong.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple, TypeVar

import nfs_rs

from smapi.drivers.nfs.remote import RemoteTree, fs_errno, is_stale

T = TypeVar("T")

#: errors of a read-write OPEN after which the file is opened read-only instead
_NO_WRITE_ACCESS = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass
class SharedOpen:
    path: str
    file: Any = None
    client: Any = None
    #: False when the server refused write access and the file is open read-only
    writable: bool = True
    #: bumped when a stale file is reopened by path, i.e. the path names another file now
    generation: int = 0
    refs: int = 0
    #: files whose state the server lost, kept open until the last handle goes: other threads may be using them
    retired: List[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Handle:
    shared: SharedOpen
    writable: bool
    generation: int


def _open_best(client: Any, remote: str) -> Tuple[Any, bool]:
    try:
        return client.open(remote, "r+b"), True
    except nfs_rs.NfsError as e:
        if fs_errno(e) not in _NO_WRITE_ACCESS:
            raise
    return client.open(remote, "rb"), False


class OpenFiles:
    def __init__(self, tree: RemoteTree) -> None:
        self.tree = tree
        self._by_path: Dict[str, SharedOpen] = {}
        self._lock = threading.Lock()

    def open(self, path: str, writable: bool) -> Handle:
        with self._lock:
            shared = self._by_path.get(path)
            if shared is None:
                shared = self._by_path[path] = SharedOpen(path)
            shared.refs += 1
        handle = Handle(shared, writable, shared.generation)
        try:
            # Opening without truncation is idempotent, so it may be repeated after a reconnect.
            self.tree.call(lambda c: self.file(handle, c), read_only=True)
            if writable and not shared.writable:
                raise OSError(errno.EACCES, f"{path}: the server allows reading only")
        except BaseException:
            self.release(handle)
            raise
        return handle

    def created(self, path: str, client: Any, file: Any) -> Handle:
        """A file just made by O_CREAT: the path names this new file now, whatever older handles still hold."""
        shared = SharedOpen(path, file=file, client=client, refs=1)
        with self._lock:
            self._by_path[path] = shared
        return Handle(shared, True, 0)

    def file(self, handle: Handle, client: Any) -> Any:
        """The handle's nfs-rs file on `client`, opened again by path after a reconnect or a stale handle."""
        shared = handle.shared
        with shared.lock:
            if handle.writable and handle.generation != shared.generation:
                raise OSError(errno.ESTALE, f"{shared.path} was removed or replaced since it was opened for writing")
            if shared.file is None or shared.client is not client:
                shared.file, shared.writable = _open_best(client, self.tree.path(shared.path))
                shared.client = client
            return shared.file

    def call(self, handle: Handle, op: Callable[[Any], T], *, read_only: bool) -> T:
        """op(file) through RemoteTree.call, reopening the file when its open state is lost."""
        used: List[Any] = []

        def run(client: Any) -> T:
            used.append(self.file(handle, client))
            return op(used[-1])

        def reopen(error: BaseException) -> None:
            self._drop_file(handle.shared, used[-1] if used else None, stale=is_stale(error))

        return self.tree.call(run, read_only=read_only, reopen=reopen)

    @staticmethod
    def _drop_file(shared: SharedOpen, failed: Any, *, stale: bool) -> None:
        with shared.lock:
            if failed is None or shared.file is not failed:
                return  # another handle of this file reopened it already
            shared.file = None
            shared.retired.append(failed)
            if stale:
                shared.generation += 1

    def moved(self, old: str, new: str) -> None:
        """After a rename: open files under `old` follow it; whatever was open as `new` lost its name."""
        with self._lock:
            self._by_path.pop(new, None)
            for path in [p for p in self._by_path if p == old or p.startswith(old + "/")]:
                shared = self._by_path.pop(path)
                shared.path = new + path[len(old):]
                self._by_path[shared.path] = shared

    def removed(self, path: str) -> None:
        with self._lock:
            self._by_path.pop(path, None)

    def release(self, handle: Handle) -> None:
        shared = handle.shared
        with self._lock:
            shared.refs -= 1
            if shared.refs > 0:
                return
            if self._by_path.get(shared.path) is shared:
                del self._by_path[shared.path]
            with shared.lock:
                files = [f for f in (*shared.retired, shared.file) if f is not None]
                shared.file, shared.retired = None, []
            for file in files:
                # Closed while no new open of this path can start: its OPEN would share the state we close.
                # The server may be gone; the open state then dies with the client's lease.
                with contextlib.suppress(Exception):
                    file.close()
