"""A directory tree on an NFS server, reached with the userspace client nfs-rs.

Paths are relative to `NfsTarget.serverpath` whatever the protocol. Two things nfs-rs 0.8.7 needs help with:

* NFSv4 cannot LOOKUP "." at the mounted root (NFS4ERR_BADNAME), so the client mounts the *parent* of the
  serverpath and prefixes every path with the last component. NFSv3 mounts the serverpath itself (MOUNT
  only accepts exported paths and their subdirectories).
* A client whose server restarted stays broken (every call fails with a Retry outcome). `RemoteTree` drops it
  and connects again; read-only and never-sent calls are retried once, anything that may have happened on
  the server is reported as an I/O error for the caller to judge.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import posixpath
import threading
from typing import Any, Callable, Optional, TypeVar

import nfs_rs

from smapi.drivers.nfs.config import NfsTarget

T = TypeVar("T")

log = logging.getLogger(__name__)

#: nfs-rs errors that are answers about the file system, not about the connection
_FS_ERRORS = {
    nfs_rs.NfsNotFoundError: errno.ENOENT,
    nfs_rs.NfsAlreadyExistsError: errno.EEXIST,
    nfs_rs.NfsPermissionError: errno.EACCES,
    nfs_rs.NfsIsADirectoryError: errno.EISDIR,
    nfs_rs.NfsNotADirectoryError: errno.ENOTDIR,
}
#: NFS status names (error.code_name) that are file-system answers too
_FS_CODES = {
    "NOTEMPTY": errno.ENOTEMPTY, "NOSPC": errno.ENOSPC, "DQUOT": errno.EDQUOT, "ROFS": errno.EROFS,
    "FBIG": errno.EFBIG, "NAMETOOLONG": errno.ENAMETOOLONG, "INVAL": errno.EINVAL, "XDEV": errno.EXDEV,
    "EXIST": errno.EEXIST, "NOENT": errno.ENOENT, "ACCESS": errno.EACCES, "PERM": errno.EPERM,
    "ISDIR": errno.EISDIR, "NOTDIR": errno.ENOTDIR,
}


def fs_errno(error: BaseException) -> Optional[int]:
    """The errno of a file-system answer, or None when the error is about reaching the server."""
    for cls, code in _FS_ERRORS.items():
        if isinstance(error, cls):
            return code
    name = str(getattr(error, "code_name", "") or "")
    for suffix, code in _FS_CODES.items():
        if name.endswith("ERR_" + suffix):
            return code
    return None


def transport_errno(error: BaseException) -> int:
    if isinstance(error, (nfs_rs.NfsTimeoutError, TimeoutError)):
        return errno.ETIMEDOUT
    return errno.EIO


def is_stale(error: BaseException) -> bool:
    """A file handle the server no longer knows (NFS3ERR_STALE, NFS4ERR_STALE): its object was removed."""
    return str(getattr(error, "code_name", "") or "").endswith("ERR_STALE")


def _log(error: BaseException, action: str, *, level: int = logging.WARNING) -> None:
    log.log(level, "NFS %s in %s of %s: %s (code %s, outcome %s, recovery %s)%s", type(error).__name__,
                getattr(error, "operation", None), getattr(error, "filename", None), error,
                getattr(error, "code_name", None), getattr(error, "outcome", None),
                getattr(error, "recovery_action", None), f"; {action}" if action else "")


def _retry_safe(error: BaseException) -> bool:
    outcome = getattr(error, "outcome", None)
    return outcome in (nfs_rs.OperationOutcome.SAFE_TO_RETRY, nfs_rs.OperationOutcome.DEFINITE_FAILURE)


def connect(target: NfsTarget, path: str, *, version: Optional[str] = None) -> Any:
    """One nfs-rs client mounted at `path` on the target's server (first accepted version wins)."""
    versions = [version] if version else list(target.versions)
    kwargs: dict = {"versions": versions, "connect_timeout": target.timeout, "operation_timeout": target.timeout}
    if target.port:
        kwargs["nfs_port"] = target.port
    return nfs_rs.Client.connect(target.url(path, version=versions[0]), **kwargs)


class RemoteTree:
    def __init__(self, target: NfsTarget) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._client: Any = None
        #: bumped at every reconnect; open files remember the generation they were opened in
        self.generation = 0
        if target.nfsversion == "3" or target.serverpath == "/":
            self._mount_path, self._prefix = target.serverpath or "/", ""
        else:
            self._mount_path, self._prefix = posixpath.split(target.serverpath)

    # -- connection -----------------------------------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = connect(self.target, self._mount_path)
                self.generation += 1
            return self._client

    def drop(self, broken: Any) -> None:
        """Forget a client that failed (only if nobody replaced it already)."""
        with self._lock:
            if self._client is broken:
                self._client = None
                # a broken client may fail to close; it is gone either way
                with contextlib.suppress(Exception):
                    broken.close()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    @property
    def version(self) -> str:
        return str(self.client().version.value)

    # -- paths ------------------------------------------------------------------------------------------------
    def path(self, rel: str) -> str:
        rel = rel.strip("/")
        full = posixpath.join(self._prefix, rel) if self._prefix else rel
        return full or "."

    def fs_stat(self) -> Any:
        """Space of the exported file system. nfs-rs asks the mounted root, which is the pseudo file system's
        (all zero) when v4 mounts the parent, so v4 asks a short-lived client mounted at the serverpath."""
        if not self._prefix:
            return self.call(lambda c: c.fs_stat(), read_only=True)
        try:
            with connect(self.target, self.target.serverpath) as client:
                return client.fs_stat()
        except nfs_rs.NfsError as e:
            raise OSError(fs_errno(e) or transport_errno(e), f"NFS server {self.target.server}: {e}") from e

    # -- calls ------------------------------------------------------------------------------------------------
    def call(self, fn: Callable[[Any], T], *, read_only: bool = False,
             reopen: Optional[Callable[[BaseException], None]] = None) -> T:
        """Run fn(client); map errors to OSError. `reopen(error)` (for calls on an open file) forgets that
        file's protocol state so the next attempt opens it again by path.

        Three kinds of failure, three recoveries, each tried once:
        * the client was closed under us (another thread reconnected): refused before it was sent, so try again
          on the current client;
        * the file's open state is gone (old/bad stateid, or a stale handle of a file opened read-only): reopen
          just that file. A stale handle of a file opened for writing is ESTALE: the file it named was removed
          or replaced, and writing into whatever now has its name would be wrong;
        * anything else is about the server or the connection: reconnect; only calls that cannot have changed
          anything on the server are repeated.
        Only the last one drops the client, since that fails every other thread's call in flight on it.
        """
        for attempt in (0, 1):
            last = attempt == 1
            client = self.client_or_oserror()
            try:
                return fn(client)
            except nfs_rs.NfsError as e:
                code = fs_errno(e)
                if code is not None:
                    raise OSError(code, str(e)) from e
                if isinstance(e, nfs_rs.NfsClientClosedError) and not last:
                    continue
                stale = is_stale(e)
                if stale or getattr(e, "recovery_action", None) == nfs_rs.RecoveryAction.REOPEN:
                    if reopen is not None and (read_only or not stale) and not last:
                        _log(e, "reopening the file", level=logging.DEBUG)  # routine: a file replaced
                        reopen(e)
                        continue
                    if stale:
                        raise OSError(errno.ESTALE, str(e)) from e
                # Not an answer about the file system: say exactly what the client reported, since the caller
                # only sees EIO/ETIMEDOUT (the FUSE daemon's stderr is the mount's log file).
                _log(e, "" if last else "reconnecting")
                self.drop(client)
                if not last and (read_only or _retry_safe(e)):
                    continue
                raise OSError(transport_errno(e), f"NFS server {self.target.server}: {e}") from e
        raise AssertionError("unreachable")

    def client_or_oserror(self) -> Any:
        try:
            return self.client()
        except nfs_rs.NfsError as e:
            raise OSError(transport_errno(e), f"NFS server {self.target.server} unreachable: {e}") from e
