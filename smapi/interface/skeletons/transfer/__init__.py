"""The Transfer API: skeletons generated from `smapi.interface.transfer`, one module per interface.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.
"""

from .transfer import Transfer_skeleton

__all__ = ["Transfer_skeleton"]
