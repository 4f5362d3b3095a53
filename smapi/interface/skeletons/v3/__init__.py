"""SMAPIv3 plugins (xapi-storage): skeletons generated from `smapi.interface.v3`, one module per interface.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.
"""

from .data import Data_skeleton
from .datapath import Datapath_skeleton
from .plugin import Plugin_skeleton
from .sr import SR_skeleton
from .volume import Volume_skeleton

__all__ = ["Plugin_skeleton", "SR_skeleton", "Volume_skeleton", "Datapath_skeleton", "Data_skeleton"]
