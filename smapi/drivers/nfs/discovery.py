"""What a server exports, for SR.probe with only `server`: the v3 MOUNT list or the v4 pseudo-root.

NFSv3 asks the MOUNT service through the portmapper (`showmount -e`, nfs-common). NFSv4 has no export list:
the exports are the entries of the server's pseudo file system root, listed with `nfs-ls` (libnfs-utils),
because nfs-rs 0.8.7 cannot list a v4 mount root. Both run as clients in `SMAPI_NFS_NETNS` when it is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple
from xml.sax.saxutils import escape

from smapi.common import commands
from smapi.drivers.nfs.config import NfsTarget
from smapi.drivers.nfs.mount import in_netns
from smapi.interface.errors import Backend_error


@dataclass(frozen=True)
class Export:
    path: str
    access: str = "*"


class DiscoveryError(Exception):
    pass


def _run(argv: List[str], timeout: float) -> str:
    try:
        r = commands.run(in_netns(argv), timeout=timeout, check=False)
    except commands.CommandTimedOut:
        raise DiscoveryError(f"{argv[0]}: no answer within {timeout:.0f}s") from None
    except commands.CommandNotFound:
        raise DiscoveryError(f"{argv[0]} is not installed") from None
    if r.returncode != 0:
        raise DiscoveryError(f"{argv[0]}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def mount_exports(target: NfsTarget) -> List[Export]:
    """NFSv3 MOUNT export list (`showmount -e`)."""
    out = _run(["showmount", "-e", "--no-headers", target.server], target.timeout * 2)
    exports = []
    for line in out.splitlines():
        path, _, groups = line.strip().partition(" ")
        if path:
            # showmount says "(everyone)" for an export open to all; classic probe XML says "*"
            groups = groups.strip()
            exports.append(Export(path, "*" if groups in ("", "(everyone)") else groups))
    return exports


def pseudo_root_exports(target: NfsTarget) -> List[Export]:
    """NFSv4: the top-level entries of the pseudo file system."""
    host = f"[{target.server}]" if ":" in target.server else target.server
    query = "?version=4" + (f"&nfsport={target.port}" if target.port else "")
    out = _run(["nfs-ls", f"nfs://{host}/{query}"], target.timeout * 2)
    exports = []
    for line in out.splitlines():
        fields = line.split(None, 5)  # mode links uid gid size name (a name may hold spaces)
        if len(fields) == 6 and fields[0].startswith("d"):
            exports.append(Export("/" + fields[5]))
    return exports


def discover(target: NfsTarget, explicit_version: bool) -> List[Export]:
    """Exports by the protocol asked for; without an explicit version, v3 MOUNT first, then the v4 pseudo-root."""
    order: Sequence[Tuple[str, Callable[[NfsTarget], List[Export]]]]
    if target.nfsversion == "3":
        order = [("NFSv3 MOUNT", mount_exports)] + ([] if explicit_version else
                                                    [("NFSv4 pseudo-root", pseudo_root_exports)])
    else:
        order = [("NFSv4 pseudo-root", pseudo_root_exports)]
    errors = []
    for name, fn in order:
        try:
            return fn(target)
        except DiscoveryError as e:
            errors.append(f"{name}: {e}")
    raise Backend_error.classic("NFSTarget", f"cannot list the exports of {target.server}: {'; '.join(errors)}")


def exports_xml(server: str, exports: List[Export]) -> str:
    """The classic probe answer (`nfs.scan_exports` in the classic NFS SR)."""
    body = "".join(
        f"<Export><Target>{escape(server)}</Target><Path>{escape(e.path)}</Path>"
        f"<Accesslist>{escape(e.access)}</Accesslist></Export>"
        for e in exports
    )
    return f"<?xml version=\"1.0\" ?><nfs-exports>{body}</nfs-exports>"
