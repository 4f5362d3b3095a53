"""Parsing and validating the Transfer API's string arguments.

Every argument arrives as a string (the XenAPI host-plugin convention). The original plugin pasted values into
shell scripts and the lighttpd configuration, so it allowed only `[a-zA-Z0-9_:.\\-,]` and no leading `-`; smapi
keeps that rule: it costs callers nothing and keeps values safe in logs, file names and tgtadm arguments.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from smapi.interface.errors import ArgumentError

_SAFE = re.compile(r"^[a-zA-Z0-9_:.\-,]+$")

DEFAULT_PORTS = {"http": 80, "https": 443, "iscsi": 3260}
#: the loopback address an exposure binds when the caller names no explicit address (see `bind_address`)
LOOPBACK = "127.0.0.1"


def check_value(name: str, value: Optional[str]) -> Optional[str]:
    """None stays None; anything else must be a non-empty, shell-safe string."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or not _SAFE.match(value) or value.startswith("-"):
        raise ArgumentError(f"argument {name}={value!r} is empty or contains characters outside [a-zA-Z0-9_:.-,]")
    return value


def parse_bool(name: str, value: Optional[str], default: bool = False) -> bool:
    if value is None:
        return default
    low = value.lower()
    if low not in ("true", "false"):
        raise ArgumentError(f"argument {name} must be \"true\" or \"false\", not {value!r}")
    return low == "true"


def parse_port(value: Optional[str], default: int) -> int:
    if value is None:
        return default
    try:
        port = int(value, 10)
    except ValueError:
        raise ArgumentError(f"network_port must be a decimal port number, not {value!r}") from None
    # 0 asks the kernel for a free port: handy for tests and for several exposures on one host.
    if not 0 <= port <= 65535:
        raise ArgumentError(f"network_port {port} is outside 0..65535")
    return port


def parse_timeout(value: Optional[str]) -> int:
    if value is None:
        return 0
    try:
        minutes = int(value, 10)
    except ValueError:
        raise ArgumentError(f"timeout_minutes must be a non-negative integer, not {value!r}") from None
    if minutes < 0:
        raise ArgumentError(f"timeout_minutes must be non-negative, not {minutes}")
    return minutes


@dataclass(frozen=True)
class NetworkArgs:
    """The network-related arguments, reduced to what a host-side exposure needs: one address to bind."""

    ip: str
    read_only: bool
    use_ssl: bool
    port: Optional[str]
    timeout_minutes: int
    get_log: bool


def bind_address(network_uuid: str, network_mode: Optional[str], network_ip: Optional[str],
                 network_mask: Optional[str], network_gateway: Optional[str]) -> str:
    """The address the exposure listens on.

    smapi serves from the host itself, so there is no VM interface to configure: `network_uuid` "management" (or
    any network name) with `network_mode` dhcp binds loopback; listening anywhere else must be explicit, with
    `network_mode=manual` and `network_ip` set to an address of this host (mask and gateway are accepted and
    checked for form only, as there is no interface to configure).
    """
    mode = (network_mode or "dhcp").lower()
    if mode not in ("dhcp", "manual"):
        raise ArgumentError(f"network_mode must be \"dhcp\" or \"manual\", not {network_mode!r}")
    if mode == "dhcp":
        return LOOPBACK
    missing = [n for n, v in (("network_ip", network_ip), ("network_mask", network_mask),
                              ("network_gateway", network_gateway)) if v is None]
    if missing:
        raise ArgumentError(f"network_mode=manual needs {', '.join(missing)}")
    for name, value in (("network_ip", network_ip), ("network_mask", network_mask),
                        ("network_gateway", network_gateway)):
        try:
            ipaddress.ip_address(value or "")
        except ValueError:
            raise ArgumentError(f"{name}={value!r} is not an IP address") from None
    return str(network_ip)


def validate_all(args: Mapping[str, Optional[str]]) -> None:
    for name, value in args.items():
        check_value(name, value)
