"""SMAPIv3 plugins (xapi-storage), SR: skeletons generated from `smapi.interface.v3`.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.

Subclass a skeleton and override the verbs your driver supports; every other verb raises `Unimplemented`
naming itself, which every transport reports as a typed error. Each verb's docstring lists the errors it
documents ("Raises:"); besides those, any verb may raise `Unimplemented` (until a driver overrides it) and
`Invalid_argument` (a missing or mistyped argument, found by the dispatcher before the verb runs).
"""

from __future__ import annotations

from typing import Any, Dict, List

from smapi.interface.errors import Unimplemented
from smapi.interface.skeleton_base import Skeleton


class SR_skeleton(Skeleton):
    """Operations on storage repositories"""

    interface_name = "SR"

    def probe(self, dbg: str, configuration: Dict[str, str]) -> List[Any]:
        """[probe dbg configuration] looks at the storage the configuration reaches and reports what SRs and
        further configurations exist there

        dbg: Debug context from the caller
        configuration: The configuration to look at
        returns result (probe_result list): What was found

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.probe")

    def create(
        self,
        dbg: str,
        uuid: str,
        configuration: Dict[str, str],
        name: str,
        description: str,
    ) -> Dict[str, str]:
        """[create dbg uuid configuration name description] creates a new SR and returns the configuration to
        store for attaching it

        dbg: Debug context from the caller
        uuid: The uuid of the new SR
        configuration: Where to create the SR
        name: Short name
        description: Longer description
        returns configuration (configuration): The configuration to attach the SR with

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.create")

    def attach(self, dbg: str, configuration: Dict[str, str]) -> str:
        """[attach dbg configuration] attaches the SR and returns its reference

        dbg: Debug context from the caller
        configuration: The SR's configuration
        returns sr (sr): The SR reference

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.attach")

    def detach(self, dbg: str, sr: str) -> None:
        """[detach dbg sr] detaches the SR; idempotent

        dbg: Debug context from the caller
        sr: The SR reference

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.detach")

    def destroy(self, dbg: str, sr: str) -> None:
        """[destroy dbg sr] destroys an attached SR and everything in it

        dbg: Debug context from the caller
        sr: The SR reference

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.destroy")

    def stat(self, dbg: str, sr: str) -> Any:
        """[stat dbg sr] returns the SR's size, free space and health

        dbg: Debug context from the caller
        sr: The SR reference
        returns sr_stat (sr_stat): The SR's state

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.stat")

    def set_name(self, dbg: str, sr: str, new_name: str) -> None:
        """[set_name dbg sr new_name] renames the SR

        dbg: Debug context from the caller
        sr: The SR reference
        new_name: The new name

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.set_name")

    def set_description(self, dbg: str, sr: str, new_description: str) -> None:
        """[set_description dbg sr new_description] changes the SR's description

        dbg: Debug context from the caller
        sr: The SR reference
        new_description: The new description

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.set_description")

    def ls(self, dbg: str, sr: str) -> List[Any]:
        """[ls dbg sr] lists the volumes of the SR

        dbg: Debug context from the caller
        sr: The SR reference
        returns volumes (volume list): The volumes

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.ls")


__all__ = ["SR_skeleton"]
