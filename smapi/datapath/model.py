"""What the datapath is given (an image) and what attach hands back (how a consumer reaches the disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

KINDS = ("vhd", "raw")


class DatapathError(Exception):
    """A datapath process or device could not be set up or torn down."""


@dataclass(frozen=True)
class ImageSpec:
    """One VDI's bytes: a VHD leaf (parents resolved inside ``resolver_dir``) or a raw file."""

    kind: str
    path: str
    resolver_dir: Optional[str] = None  # VHD only; default: the leaf's directory (raw: always None)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"image kind must be one of {KINDS}, not {self.kind!r}")
        object.__setattr__(self, "path", os.path.abspath(self.path))
        # Normalised so that two specs of the same disk compare equal (attach checks a second dp against the first).
        if self.kind == "raw":
            resolver = None
        else:
            resolver = os.path.abspath(self.resolver_dir or os.path.dirname(self.path))
        object.__setattr__(self, "resolver_dir", resolver)

    def to_json(self) -> Dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "resolver_dir": self.resolver_dir}

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> ImageSpec:
        return cls(d["kind"], d["path"], d.get("resolver_dir"))


@dataclass
class AttachResult:
    """Both shapes of the storage interface's answer.

    ``params`` / ``params_nbd`` fill the deprecated ``attach_info`` (``params_nbd`` in the classic
    ``nbd:unix:<socket>:exportname=<vdi>`` form); ``implementations`` is the attach2/attach3 ``backend`` list,
    most preferred first, each ``[constructor, record]`` as it goes on the wire (e.g. ``["Nbd", {"uri": ...}]``).
    """

    params: str
    params_nbd: str
    implementations: List[List[Any]] = field(default_factory=list)
    readonly: bool = False

    @property
    def nbd_uri(self) -> str:
        """The standard ``nbd+unix:///<export>?socket=<socket>`` URI for libnbd and qemu clients."""
        for kind, rec in self.implementations:
            if kind == "Nbd" and rec["uri"].startswith("nbd+unix:"):
                return str(rec["uri"])
        raise KeyError("no nbd+unix implementation")
