"""iSCSI exposures through tgtd (placeholder until the tgtd export lands)."""

from __future__ import annotations

from typing import Any


class IscsiExport:
    def __init__(self, exposure: Any, disk: Any) -> None:
        raise NotImplementedError("iSCSI exposures are not available yet")


def clean_leftovers(exposure: Any) -> None:
    return None
