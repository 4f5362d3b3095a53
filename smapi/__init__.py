"""smapi: a storage-manager (SMAPI) plugin framework with pluggable SR drivers and a native VHD engine.

The names a driver author needs are available from here: `Driver`, the skeletons of the storage interface
(`Query_skeleton`, `SR_skeleton`, `VDI_skeleton`), of SMAPIv3 (`Plugin_skeleton`, `Volume_skeleton`,
`Datapath_skeleton`; its SR skeleton is `smapi.interface.skeletons.v3.SR_skeleton`) and of the Transfer API
(`Transfer_skeleton`). They load on first use, so tools that need none of them (a per-verb executable's cold
start) do not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from smapi.common.version import __version__

_LAZY = {
    "Driver": "smapi.core.driver",
    "Query_skeleton": "smapi.interface.skeletons.storage",
    "SR_skeleton": "smapi.interface.skeletons.storage",
    "VDI_skeleton": "smapi.interface.skeletons.storage",
    "Plugin_skeleton": "smapi.interface.skeletons.v3",
    "Volume_skeleton": "smapi.interface.skeletons.v3",
    "Datapath_skeleton": "smapi.interface.skeletons.v3",
    "Transfer_skeleton": "smapi.interface.skeletons.transfer",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smapi' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
