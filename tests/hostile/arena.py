"""The arena of the hostile-input suite: a file SR with a canary directory beside it, and the checks that
nothing outside the SR (and the host's run directory) was created, changed or removed."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

#: names every transport is attacked with; each is refused as a name (none can be a valid SR or VDI uuid)
NAME_CORPUS = (
    "", ".", "..", "/", "/etc/passwd", "x/../../../../canary/f", "../canary/f", "../../canary/new",
    "../../../canary/new", "vdi-x/../../../canary/g", "..\\..\\canary\\f", "%2e%2e%2fcanary", "-rf", " lead",
    "trail ", "ünïcode", "a" * 129, "a" * 100_000, "a\nb", "a\x00b", "\x01", "sr.json/../x", ".locks",
)
#: values XML cannot carry, refused when a name or description is set
TEXT_CORPUS = ("\x01", "a\x00b", "bell\x07", "esc\x1b[31m", "\ud800", "\ufffe", "x" * 20_000)

Snapshot = Dict[str, Tuple[str, int, int, str]]


@dataclass
class Arena:
    root: Path
    sr_path: Path
    run_dir: Path
    canary: Path

    @property
    def absolute_canary_names(self) -> Tuple[str, ...]:
        return (str(self.canary / "f"), str(self.canary / "new"), str(self.canary))

    def hostile_names(self) -> Tuple[str, ...]:
        return NAME_CORPUS + self.absolute_canary_names

    def outside(self) -> Snapshot:
        """Every file and directory of the arena outside the SR and the run directory, with its content."""
        out: Snapshot = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if here / d not in (self.sr_path, self.run_dir)]
            for name in dirnames + filenames:
                path = here / name
                st = os.lstat(path)
                digest = ""
                if os.path.isfile(path) and not os.path.islink(path):
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(self.root))] = (oct(st.st_mode), st.st_size, st.st_mtime_ns, digest)
        return out


def make_arena(base: Path) -> Arena:
    root = base / "arena"
    arena = Arena(root, root / "pool" / "sr", root / "run", root / "canary")
    (root / "pool").mkdir(parents=True)
    arena.run_dir.mkdir()
    arena.canary.mkdir()
    (arena.canary / "f").write_bytes(b"canary file: must never change\n")
    (arena.canary / "vdi-x").write_bytes(b"a lock-like name outside the SR\n")
    (root / "pool" / "foreign.vhd").write_bytes(b"an admin's image beside the SR\n")
    return arena
