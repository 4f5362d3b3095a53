"""Why an NFS server could not be used, as the classic typed errors xapi knows (NFSTarget, NFSMount, NFSVersion)."""

from __future__ import annotations

from typing import Tuple

import nfs_rs

from smapi.drivers.nfs.config import VERSIONS, NfsTarget
from smapi.interface.errors import Backend_error

#: nfs-rs errors saying the server answered but has no such export/path (or refuses it)
_NO_EXPORT = (nfs_rs.NfsNotFoundError, nfs_rs.NfsMountError, nfs_rs.NfsPermissionError, nfs_rs.NfsNotADirectoryError)


def _other_version_answers(target: NfsTarget) -> str:
    """A protocol version other than the requested one that this server speaks, or ''."""
    from smapi.drivers.nfs.remote import connect

    for name in ("4.1", "4.0", "3"):
        if name in target.versions:
            continue
        probe = NfsTarget(target.server, "/", name, target.port, timeout=min(target.timeout, 3.0))
        try:
            connect(probe, "/", version=name).close()
        except Exception:  # noqa: BLE001 - any failure means "not this version either"
            continue
        return name
    return ""


def classify(target: NfsTarget, error: BaseException) -> Tuple[str, str]:
    """(classic error name, detail) for a failure to reach `target`."""
    cause = error.__cause__ or error
    if isinstance(cause, _NO_EXPORT) or isinstance(error, (FileNotFoundError, PermissionError, NotADirectoryError)):
        return "NFSMount", f"{target.remote()}: no such export or directory on the server ({cause})"
    if isinstance(cause, nfs_rs.NfsUnsupportedError):
        return "NFSVersion", f"{target.server} does not support NFS {target.nfsversion}: {cause}"
    other = _other_version_answers(target)
    if other:
        return "NFSVersion", (f"{target.server} does not answer NFS {target.nfsversion} but answers NFS {other}; "
                              f"set nfsversion accordingly ({cause})")
    port = f" port {target.port}" if target.port else ""
    return "NFSTarget", f"NFS server {target.server}{port} unreachable: {cause}"


def to_backend_error(target: NfsTarget, error: BaseException) -> Backend_error:
    name, detail = classify(target, error)
    return Backend_error.classic(name, detail)


__all__ = ["VERSIONS", "classify", "to_backend_error"]
