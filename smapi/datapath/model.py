"""What the datapath is given: one VDI's image (a file, or an opener of a volume that is no file here)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

KINDS = ("vhd", "raw")


class DatapathError(Exception):
    """A datapath process or device could not be set up or torn down."""


@dataclass(frozen=True)
class ImageSpec:
    """One VDI's bytes, in one of two forms.

    * A file: a VHD leaf (parents resolved inside ``resolver_dir``) or a raw file at ``path``.
    * An *opener*: volumes that are no files here (LVs without device-mapper, LUNs) are opened by the driver's own
      code inside the server. ``opener`` is a ``module:function`` reference, ``args`` its JSON-able arguments;
      the plugin calls ``function(args, writable=...)`` and gets ``(leaf Backing, ParentResolver or None)``.
      ``path`` is then only a description for logs and errors (e.g. ``lvm://VG/LV``).

    ``block`` optionally names a region of a block device that holds a raw image as is
    (``{"device", "offset", "size"}``): consumers that want a block device get a loop device over that region.
    """

    kind: str
    path: str
    resolver_dir: Optional[str] = None  # VHD files only; default: the leaf's directory (raw: always None)
    opener: Optional[str] = None
    #: canonical JSON of the opener's arguments (a string, so that specs stay hashable and compare by value)
    args: Optional[str] = None
    block: Optional[Tuple[str, int, int]] = None  # (device, offset, size)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"image kind must be one of {KINDS}, not {self.kind!r}")
        if self.opener is not None:
            if ":" not in self.opener:
                raise ValueError(f"opener must be a module:function reference, not {self.opener!r}")
            args = self.args if isinstance(self.args, str) else json.dumps(self.args or {}, sort_keys=True)
            object.__setattr__(self, "args", json.dumps(json.loads(args), sort_keys=True))
            object.__setattr__(self, "resolver_dir", None)
        else:
            object.__setattr__(self, "path", os.path.abspath(self.path))
            # Normalised so that two specs of the same disk compare equal (attach checks a second dp against it).
            if self.kind == "raw":
                resolver = None
            else:
                resolver = os.path.abspath(self.resolver_dir or os.path.dirname(self.path))
            object.__setattr__(self, "resolver_dir", resolver)
        if self.block is not None:
            if self.kind != "raw":
                raise ValueError("only a raw image can be a block device region")
            dev, offset, size = self.block
            object.__setattr__(self, "block", (str(dev), int(offset), int(size)))

    @classmethod
    def opened_by(cls, kind: str, opener: str, args: Dict[str, Any], *, description: str,
                  block: Optional[Tuple[str, int, int]] = None) -> ImageSpec:
        return cls(kind, description, None, opener, json.dumps(args, sort_keys=True), block)

    @property
    def is_file(self) -> bool:
        """The image is a file a consumer may open itself (not an opener's volume)."""
        return self.opener is None

    def opener_args(self) -> Dict[str, Any]:
        return dict(json.loads(self.args)) if self.args else {}

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"kind": self.kind, "path": self.path, "resolver_dir": self.resolver_dir}
        if self.opener is not None:
            out.update(opener=self.opener, args=self.opener_args())
        if self.block is not None:
            out["block"] = list(self.block)
        return out

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> ImageSpec:
        block = d.get("block")
        args = d.get("args")
        return cls(d["kind"], d["path"], d.get("resolver_dir"), d.get("opener"),
                   None if args is None else json.dumps(args, sort_keys=True),
                   None if block is None else (block[0], block[1], block[2]))
