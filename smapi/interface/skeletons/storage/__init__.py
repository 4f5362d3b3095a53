"""The storage interface (SMAPIv2): skeletons generated from `smapi.interface.storage`, one module per interface.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.
"""

from .query import Query_skeleton
from .sr import SR_skeleton
from .vdi import VDI_skeleton

__all__ = ["Query_skeleton", "VDI_skeleton", "SR_skeleton"]
