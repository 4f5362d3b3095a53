"""device_config of an NFS SR: parsing, validation and the documented keys.

The keys are the classic NFSSR ones (`server`, `serverpath`, `nfsversion`, `options`) plus `port`, `timeo` and
`SRmaster`. An `NfsTarget` is the validated, immutable form every other module takes.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from smapi.interface.errors import Backend_error

CONFIGURATION: Dict[str, str] = {
    "server": "NFS server host name or address (required)",
    "serverpath": "Exported path (v3) or path in the server's v4 pseudo filesystem; the SR lives in "
                  "<serverpath>/<sr_uuid>/ (required except to probe for exports)",
    "nfsversion": "NFS protocol: 3, 4 (4.1, falling back to 4.0), 4.0 or 4.1 (default 3)",
    "port": "NFS server port (default 2049; NFSv3 asks the portmapper when it is absent)",
    "options": "Extra mount options, comma separated (kernel client: passed to mount -o; userspace client: "
               "timeo=<deciseconds>, retrans=<n>, soft and hard are honoured, others ignored)",
    "timeo": "Seconds an NFS request may take before the verb fails with an error (default 10; classic "
             "deciseconds in options=timeo=N also work)",
    "SRmaster": "Accepted as the toolstack passes it; not needed: sanlock leases on the export let every host that "
                "attaches the SR change its metadata safely (docs/pool.md)",
    "host_id": "This host's sanlock host id in the SR's lockspace, 1..64, unique in the pool (default: allocated "
               "at the first SR.attach and recorded in the SR)",
}

#: what each accepted nfsversion asks the client for, in order of preference
VERSIONS: Dict[str, Tuple[str, ...]] = {
    "3": ("3",),
    "4": ("4.1", "4.0"),
    "4.0": ("4.0",),
    "4.1": ("4.1",),
}
DEFAULT_TIMEOUT = 10.0


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_options(text: str) -> Dict[str, str]:
    """`a,b=c` -> {"a": "", "b": "c"} (mount(8) option syntax)."""
    out: Dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, _, value = item.partition("=")
        out[key] = value
    return out


@dataclass(frozen=True)
class NfsTarget:
    server: str
    serverpath: str
    nfsversion: str = "3"
    port: Optional[int] = None
    options: Dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    sr_master: bool = True

    @property
    def versions(self) -> Tuple[str, ...]:
        return VERSIONS[self.nfsversion]

    def url(self, path: Optional[str] = None, *, version: Optional[str] = None) -> str:
        """An nfs-rs URL for `path` (default: serverpath) on this server."""
        host = f"[{self.server}]" if ":" in self.server else self.server
        port = f":{self.port}" if self.port else ""
        query = f"?version={version or self.versions[0]}"
        return f"nfs://{host}{port}{path if path is not None else self.serverpath}{query}"

    def remote(self) -> str:
        """`server:serverpath`, as mount(8) and error messages spell it."""
        return f"{self.server}:{self.serverpath}"

    def sub(self, name: str) -> NfsTarget:
        """The same server, one directory further down (the SR's own directory)."""
        return NfsTarget(self.server, posixpath.join(self.serverpath, name), self.nfsversion, self.port,
                         dict(self.options), self.timeout, self.sr_master)

    def kernel_options(self) -> List[str]:
        opts = [f"vers={self.nfsversion}", "soft", f"timeo={max(1, int(self.timeout * 10))}", "retrans=1"]
        if self.port:
            opts.append(f"port={self.port}")
        if self.nfsversion == "3":
            opts.append("nolock")  # NLM is not used: SR locks are lease files on the export
        for key, value in self.options.items():
            if key not in ("vers", "nfsvers", "timeo", "port"):
                opts.append(f"{key}={value}" if value else key)
        return opts


def from_device_config(dc: Mapping[str, str], *, need_path: bool = True) -> NfsTarget:
    """Validate a device_config; missing or malformed keys are the classic typed errors."""
    server = (dc.get("server") or "").strip()
    if not server:
        raise Backend_error.classic("ConfigServerMissing", "device_config needs 'server'")
    serverpath = (dc.get("serverpath") or "").strip()
    if need_path and not serverpath:
        raise Backend_error.classic("ConfigServerPathMissing", "device_config needs 'serverpath'")
    if serverpath and not serverpath.startswith("/"):
        raise Backend_error.classic("ConfigServerPathMissing", f"serverpath {serverpath!r} is not absolute")
    serverpath = posixpath.normpath(serverpath) if serverpath else ""
    version = (dc.get("nfsversion") or "3").strip()
    if version not in VERSIONS:
        raise Backend_error.classic("NFSVersion", f"nfsversion {version!r} is not one of {', '.join(VERSIONS)}")
    port: Optional[int] = None
    if (dc.get("port") or "").strip():
        try:
            port = int(dc["port"])
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise Backend_error.classic("NFSMount", f"port {dc['port']!r} is not a TCP port number")
    options = parse_options(dc.get("options", ""))
    timeout = DEFAULT_TIMEOUT
    if options.get("timeo"):
        timeout = int(options["timeo"]) / 10.0  # mount(8) timeo is in deciseconds
    if (dc.get("timeo") or "").strip():
        timeout = float(dc["timeo"])
    if timeout <= 0:
        raise Backend_error.classic("NFSMount", f"timeout {timeout} must be positive")
    return NfsTarget(
        server=server, serverpath=serverpath, nfsversion=version, port=port, options=options, timeout=timeout,
        sr_master=_truthy(dc.get("SRmaster", "true")),
    )
