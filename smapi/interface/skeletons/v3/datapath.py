"""SMAPIv3 plugins (xapi-storage), Datapath: skeletons generated from `smapi.interface.v3`.

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


class Datapath_skeleton(Skeleton):
    """Making volumes usable by a consumer: open, attach, activate, deactivate, detach, close; all
    idempotent"""

    interface_name = "Datapath"

    def open(self, dbg: str, uri: str, persistent: bool) -> None:
        """[open dbg uri persistent] prepares the volume; non-persistent volumes are reset on close

        dbg: Debug context from the caller
        uri: A volume URI
        persistent: False for a disk whose writes are discarded

        Raises:
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.open")

    def attach(self, dbg: str, uri: str, domain: str) -> Any:
        """[attach dbg uri domain] makes the disk reachable and says how

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk
        returns backend (backend): How to reach the disk

        Raises:
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.attach")

    def activate(self, dbg: str, uri: str, domain: str) -> None:
        """[activate dbg uri domain] allows I/O to start

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk

        Raises:
            Volume_does_not_exist: The volume does not exist
            Activated_on_another_host: The volume is activated on another host; the operation must run there
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.activate")

    def activate_readonly(self, dbg: str, uri: str, domain: str) -> None:
        """[activate_readonly dbg uri domain] allows read-only I/O (ATTACH_READONLY)

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk

        Raises:
            Volume_does_not_exist: The volume does not exist
            Activated_on_another_host: The volume is activated on another host; the operation must run there
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.activate_readonly")

    def import_activate(self, dbg: str, uri: str, domain: str) -> str:
        """[import_activate dbg uri domain] returns the path of a Unix socket; a file descriptor passed to it
        (SCM_RIGHTS) becomes the server end of an NBD connection to the active volume, for inbound import
        mirroring (VDI_MIRROR_IN feature)

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk
        returns sock_path (string): A path to a Unix domain socket

        Raises:
            Volume_does_not_exist: The volume does not exist
            Activated_on_another_host: The volume is activated on another host; the operation must run there
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.import_activate")

    def deactivate(self, dbg: str, uri: str, domain: str) -> None:
        """[deactivate dbg uri domain] stops I/O and flushes

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk

        Raises:
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.deactivate")

    def detach(self, dbg: str, uri: str, domain: str) -> None:
        """[detach dbg uri domain] releases what attach made; should never fail

        dbg: Debug context from the caller
        uri: A volume URI
        domain: The domain (VM) that will use the disk

        Raises:
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.detach")

    def close(self, dbg: str, uri: str) -> None:
        """[close dbg uri] ends the use of the volume

        dbg: Debug context from the caller
        uri: A volume URI

        Raises:
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Datapath.close")


__all__ = ["Datapath_skeleton"]
