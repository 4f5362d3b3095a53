"""SMAPIv3 plugins (xapi-storage), Plugin: skeletons generated from `smapi.interface.v3`.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.

Subclass a skeleton and override the verbs your driver supports; every other verb raises `Unimplemented`
naming itself, which every transport reports as a typed error. Each verb's docstring lists the errors it
documents ("Raises:"); besides those, any verb may raise `Unimplemented` (until a driver overrides it) and
`Invalid_argument` (a missing or mistyped argument, found by the dispatcher before the verb runs).
"""

from __future__ import annotations

from typing import Any, List

from smapi.interface.errors import Unimplemented
from smapi.interface.skeleton_base import Skeleton


class Plugin_skeleton(Skeleton):
    """Discover properties of this implementation. Every implementation must support the query interface or
    it will not be recognised as a storage plugin by xapi."""

    interface_name = "Plugin"

    def query(self, dbg: str) -> Any:
        """Query this implementation and return its properties. This is called by xapi to determine whether it
        is compatible with xapi and to discover the supported features.

        dbg: Debug context from the caller
        returns query_result (plugin_query_result): The properies of this implementation

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Plugin.query")

    def ls(self, dbg: str) -> List[str]:
        """[ls dbg]: returns a list of attached SRs

        dbg: Debug context from the caller
        returns srs (string list): The attached SRs

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Plugin.ls")

    def diagnostics(self, dbg: str) -> str:
        """Returns a printable set of backend diagnostic information. Implementations are encouraged to include
        any data which will be useful to diagnose problems. Note this data should not include personally-
        identifiable data as it is intended to be automatically included in bug reports.

        dbg: Debug context from the caller
        returns diagnostics (string): A string containing loggable human-readable diagnostics information

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Plugin.diagnostics")


__all__ = ["Plugin_skeleton"]
