"""The userspace NFS mount: a FUSE file system (mfusepy, libfuse3) whose every call is an nfs-rs call.

It presents `<server>:<serverpath>` as a real directory, so the SR engine's directory substrate runs on it
unchanged, and a datapath gets a real file path to open.

Choices that matter for a *shared* SR:

* no kernel caching at all (`direct_io`, zero entry/attr/negative timeouts): another host's changes are seen by
  the next call, never hidden behind this kernel's page or dentry cache;
* `write_at` in nfs-rs returns only once the data is stable on the server, so fsync/flush have nothing left
  to do, and the directory substrate's fsync-then-rename protocol keeps its guarantees;
* a server that restarts breaks the nfs-rs client: `RemoteTree` reconnects and open files are reopened by path
  on first use, so a restarted server gives full service again without remounting;
* every handle on a file shares one NFS open of it (`openfiles.py`): nfs-rs gives all opens of a client one
  NFSv4 open-owner, and two OPENs of one file by one owner trip over each other's state.

Run as `python -m smapi.drivers.nfs.fusefs --status-fd N DEVICE_CONFIG_JSON MOUNTPOINT` (see `mount.py`).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import stat
import sys
import threading
from typing import Any, Dict, List, Optional

from smapi.drivers.nfs.config import NfsTarget, from_device_config
from smapi.drivers.nfs.openfiles import Handle, OpenFiles
from smapi.drivers.nfs.remote import RemoteTree

# mfusepy picks libfuse2 unless told: libfuse2 has no big writes and crawls at 4 KiB per request.
os.environ.setdefault("FUSE_LIBRARY_PATH", "libfuse3.so.3")
import mfusepy  # noqa: E402

#: largest request the kernel sends us (it splits bigger reads/writes); nfs-rs splits further by server limits
MAX_IO = 1 << 20

_TYPE_BITS = {
    "FILE": stat.S_IFREG, "DIRECTORY": stat.S_IFDIR, "SYMLINK": stat.S_IFLNK, "BLOCK_DEVICE": stat.S_IFBLK,
    "CHARACTER_DEVICE": stat.S_IFCHR, "FIFO": stat.S_IFIFO, "SOCKET": stat.S_IFSOCK,
}


def attrs(info: Any) -> Dict[str, int]:
    """A FUSE stat dict from an nfs-rs FileInfo (mode holds only permission bits; the type is separate)."""
    return {
        "st_mode": _TYPE_BITS.get(info.type.name, stat.S_IFREG) | (info.mode & 0o7777),
        "st_nlink": info.nlink, "st_uid": info.uid, "st_gid": info.gid, "st_size": info.size,
        "st_blocks": (info.used + 511) // 512, "st_blksize": MAX_IO,
        "st_atime": info.atime, "st_mtime": info.mtime, "st_ctime": info.ctime,
    }


class NfsFuse(mfusepy.Operations):
    use_ns = True

    def __init__(self, tree: RemoteTree) -> None:
        self.tree = tree
        self.files = OpenFiles(tree)
        self._handles: Dict[int, Handle] = {}
        self._next = 1
        self._lock = threading.Lock()

    # -- mount-time configuration ---------------------------------------------------------------------------
    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        if config_3 is not None:
            # Coherence between hosts beats local caching: nothing is cached by this kernel.
            config_3.entry_timeout = 0.0
            config_3.attr_timeout = 0.0
            config_3.negative_timeout = 0.0
            config_3.direct_io = 1
            config_3.hard_remove = 1  # unlink really unlinks, no .fuse_hidden files left on the export
        if conn_info is not None:
            conn_info.max_write = MAX_IO
            conn_info.max_readahead = MAX_IO

    # -- handles ---------------------------------------------------------------------------------------------
    def _add(self, handle: Handle) -> int:
        with self._lock:
            fh = self._next
            self._next += 1
            self._handles[fh] = handle
            return fh

    def _get(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise mfusepy.FuseOSError(errno.EBADF) from None

    # -- attributes and directories ----------------------------------------------------------------------------
    def getattr(self, path: str, fh: Optional[int] = None) -> Dict[str, int]:
        return attrs(self.tree.call(lambda c: c.stat(self.tree.path(path)), read_only=True))

    def readdir(self, path: str, fh: int) -> List[str]:
        return [".", "..", *self.tree.call(lambda c: c.listdir(self.tree.path(path)), read_only=True)]

    def statfs(self, path: str) -> Dict[str, int]:
        fs = self.tree.fs_stat()
        block = 4096
        return {"f_bsize": block, "f_frsize": block, "f_blocks": fs.total_bytes // block,
                "f_bfree": fs.free_bytes // block, "f_bavail": fs.available_bytes // block,
                "f_files": fs.total_files, "f_ffree": fs.free_files, "f_favail": fs.free_files, "f_namemax": 255}

    def mkdir(self, path: str, mode: int) -> int:
        # MKDIR is atomic on the server: the lease locks of the NFS substrate rely on its EEXIST.
        self.tree.call(lambda c: c.mkdir(self.tree.path(path), mode=mode & 0o7777))
        return 0

    def rmdir(self, path: str) -> int:
        self.tree.call(lambda c: c.rmdir(self.tree.path(path)))
        return 0

    def unlink(self, path: str) -> int:
        self.tree.call(lambda c: c.unlink(self.tree.path(path)))
        self.files.removed(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.tree.call(lambda c: c.rename(self.tree.path(old), self.tree.path(new)))
        self.files.moved(old, new)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self.tree.call(lambda c: c.chmod(self.tree.path(path), mode & 0o7777))
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0  # ownership is the server's business (numeric AUTH_SYS, no_root_squash on test servers)

    def utimens(self, path: str, times: Optional[tuple] = None) -> int:
        return 0  # nothing in smapi depends on timestamps it sets itself

    def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
        self.tree.call(lambda c: c.truncate(self.tree.path(path), length))
        return 0

    # -- files ------------------------------------------------------------------------------------------------
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        remote = self.tree.path(path)

        def make(c: Any) -> Handle:
            # The kernel looked the name up first; a file that appeared since is not truncated.
            if c.exists(remote):
                raise OSError(errno.EEXIST, path)
            return self.files.created(path, c, c.open(remote, "w+b"))

        return self._add(self.tree.call(make))

    def open(self, path: str, flags: int) -> int:
        return self._add(self.files.open(path, (flags & os.O_ACCMODE) != os.O_RDONLY))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.files.call(self._get(fh), lambda f: f.read_at(offset, size), read_only=True)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        # A write refused for lost open state did not happen, so it is sent again on the reopened file.
        self.files.call(self._get(fh), lambda f: f.write_at(data, offset), read_only=False)
        return len(data)

    def flush(self, path: str, fh: int) -> int:
        return 0  # every write_at is already stable on the server

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0  # NFS directory operations are synchronous on the server

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is not None:
            self.files.release(handle)
        return 0


# --- the daemon ------------------------------------------------------------------------------------------------


def check(tree: RemoteTree) -> Dict[str, str]:
    """Reach the server and the serverpath now, so attach fails with the reason instead of a dead mount."""
    from smapi.drivers.nfs.errors import classify

    try:
        info = tree.call(lambda c: c.stat(tree.path("")), read_only=True)
    except OSError as e:
        name, detail = classify(tree.target, e)
        return {"error": name, "detail": detail}
    if info.type.name != "DIRECTORY":
        return {"error": "NFSMount", "detail": f"{tree.target.remote()} is not a directory"}
    return {"ok": "true", "version": tree.version}


def serve(target: NfsTarget, mountpoint: str, status_fd: Optional[int], *, threads: bool = True) -> int:
    tree = RemoteTree(target)
    status = check(tree)

    def report(value: Dict[str, str]) -> None:
        if status_fd is not None:
            os.write(status_fd, (json.dumps(value) + "\n").encode())
            os.close(status_fd)

    if "error" in status:
        report(status)
        return 1
    report(status)
    try:
        mfusepy.FUSE(NfsFuse(tree), mountpoint, foreground=True, nothreads=not threads,
                     fsname=f"nfs:{target.remote()}", subtype="smapi-nfs", default_permissions=False)
    finally:
        tree.close()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status-fd", type=int, default=None)
    parser.add_argument("--single-thread", action="store_true")
    parser.add_argument("device_config", help="the SR's device_config as JSON")
    parser.add_argument("mountpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    target = from_device_config(json.loads(args.device_config))
    return serve(target, args.mountpoint, args.status_fd, threads=not args.single_thread)


if __name__ == "__main__":
    sys.exit(main())
