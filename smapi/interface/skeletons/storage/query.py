"""The storage interface (SMAPIv2), Query: skeletons generated from `smapi.interface.storage`.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.

Subclass a skeleton and override the verbs your driver supports; every other verb raises `Unimplemented`
naming itself, which every transport reports as a typed error. Each verb's docstring lists the errors it
documents ("Raises:"); besides those, any verb may raise `Unimplemented` (until a driver overrides it) and
`Invalid_argument` (a missing or mistyped argument, found by the dispatcher before the verb runs).
"""

from __future__ import annotations

from typing import Any

from smapi.interface.errors import Unimplemented
from smapi.interface.skeleton_base import Skeleton


class Query_skeleton(Skeleton):
    """Discover properties of this implementation"""

    interface_name = "Query"

    def query(self, dbg: str) -> Any:
        """Query the implementation and return its properties

        dbg: Debug context from the caller
        returns query_result (query_result): The properies of this implementation

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Query.query")

    def diagnostics(self, dbg: str) -> str:
        """[diagnostics ()]: returns a printable set of backend diagnostic information.

        dbg: Debug context from the caller
        returns diagnostics (string): A string containing loggable human-readable diagnostics information

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Query.diagnostics")


__all__ = ["Query_skeleton"]
