"""get_import_instructions: the steps that rebuild an exported snapshot tree, from VM metadata in a VDI.

The VDI holds a tar whose `ova.xml` is the XML-RPC serialisation of `{version, objects}` (an XVA's metadata).
Each `VDI` object gives `location`, `virtual_size`, `is_a_snapshot` and `sm_config["vhd-parent"]`. Trees are
walked depth first from each root, parent before children, as the Transfer VM's plugin did:

    create <location> <virtual size rounded up to 512>   a root
    clone <location> <parent location>                  a child that is not its parent's last
    reuse <location> <parent location>                  its parent's last child (upload into the parent's VDI)
    pass | snap <location> | leaf <location>            has children | a snapshot leaf | a plain leaf

Instructions are newline-separated.
"""

from __future__ import annotations

import tarfile
import xmlrpc.client
from typing import IO, Any, Dict, List, cast

from smapi.interface.errors import ArgumentError

MAX_OVA = 64 << 20


class _DiskReader:
    def __init__(self, disk: Any) -> None:
        self.disk = disk
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = self.disk.size if n < 0 else min(self.disk.size, self.pos + n)
        data = self.disk.read(self.pos, end - self.pos) if end > self.pos else b""
        self.pos = end
        return data


def read_ova(disk: Any) -> Dict[str, Any]:
    try:
        # A stream ("r|") is only ever read: the reader needs none of a file's write or seek methods.
        with tarfile.open(fileobj=cast(IO[bytes], _DiskReader(disk)), mode="r|") as tar:
            for member in tar:
                if member.name.lstrip("./") == "ova.xml" and member.isfile():
                    if member.size > MAX_OVA:
                        raise ArgumentError(f"ova.xml is {member.size} bytes, too large")
                    f = tar.extractfile(member)
                    text = f.read() if f is not None else b""
                    break
            else:
                raise ArgumentError("the metadata VDI holds no ova.xml")
    except tarfile.TarError as e:
        raise ArgumentError(f"the metadata VDI does not hold a tar: {e}") from None
    body = text.decode("utf-8", "replace").strip()
    if body.startswith("<?xml"):
        body = body.split("?>", 1)[1]
    try:
        (value,), _ = xmlrpc.client.loads(f"<methodResponse><params><param>{body}</param></params>"
                                          f"</methodResponse>")
    except Exception as e:  # xmlrpc raises ExpatError, ResponseError, ... for bad XML
        raise ArgumentError(f"ova.xml is not an XML-RPC value: {e}") from None
    if not isinstance(value, dict):
        raise ArgumentError("ova.xml does not hold a struct")
    return value


def instructions(ova: Dict[str, Any]) -> str:
    vdis: Dict[str, Dict[str, Any]] = {}
    for obj in ova.get("objects", []):
        if isinstance(obj, dict) and obj.get("class") == "VDI" and isinstance(obj.get("snapshot"), dict):
            rec = obj["snapshot"]
            loc = str(rec.get("location", ""))
            if loc:
                vdis[loc] = rec
    children: Dict[str, List[str]] = {loc: [] for loc in vdis}
    roots: List[str] = []
    for loc in sorted(vdis):
        parent = str((vdis[loc].get("sm_config") or {}).get("vhd-parent", ""))
        if parent and parent in vdis:
            children[parent].append(loc)
        else:
            roots.append(loc)
    out: List[str] = []

    def walk(loc: str, parent: str, last: bool) -> None:
        rec = vdis[loc]
        if not parent:
            size = int(rec.get("virtual_size", 0) or 0)
            out.append(f"create {loc} {-(-size // 512) * 512}")
        elif last:
            out.append(f"reuse {loc} {parent}")
        else:
            out.append(f"clone {loc} {parent}")
        kids = children[loc]
        if kids:
            out.append("pass")
        elif str(rec.get("is_a_snapshot", False)).lower() in ("true", "1"):
            out.append(f"snap {loc}")
        else:
            out.append(f"leaf {loc}")
        for i, kid in enumerate(kids):
            walk(kid, loc, i == len(kids) - 1)

    for root in roots:
        walk(root, "", False)
    return "\n".join(out)
