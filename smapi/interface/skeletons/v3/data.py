"""SMAPIv3 plugins (xapi-storage), Data: skeletons generated from `smapi.interface.v3`.

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


class Data_skeleton(Skeleton):
    """Long-running data operations on volumes: copies to and mirrors onto remote disks"""

    interface_name = "Data"

    def copy(self, dbg: str, uri: str, domain: str, remote: str, blocklist: Any) -> Any:
        """[copy dbg uri domain remote blocklist] copies [blocklist] of the local volume to [remote] in the
        background

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk
        remote: A URI of the remote disk, e.g. nbd://host/export or nbd+unix:///export?socket=S
        blocklist: What to copy
        returns operation (operation): The operation

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Data.copy")

    def mirror(self, dbg: str, uri: str, domain: str, remote: str) -> Any:
        """[mirror dbg uri domain remote] starts mirroring the writes to the active volume onto [remote]

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk
        remote: A URI of the remote disk, e.g. nbd://host/export or nbd+unix:///export?socket=S
        returns operation (operation): The operation

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Data.mirror")

    def stat(self, dbg: str, operation: Any) -> Any:
        """[stat dbg operation] says how an operation is going

        dbg: Debug context from the caller
        operation: The operation
        returns status (status): The operation's state

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Data.stat")

    def cancel(self, dbg: str, operation: Any) -> None:
        """[cancel dbg operation] stops an operation

        dbg: Debug context from the caller
        operation: The operation

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Data.cancel")

    def destroy(self, dbg: str, operation: Any) -> None:
        """[destroy dbg operation] forgets an ended (or cancelled) operation

        dbg: Debug context from the caller
        operation: The operation

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Data.destroy")

    def ls(self, dbg: str) -> List[Any]:
        """[ls dbg] lists the operations this host knows

        dbg: Debug context from the caller
        returns operations (operation list): The operations

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Data.ls")


__all__ = ["Data_skeleton"]
