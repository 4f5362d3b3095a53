"""The storage interface (SMAPIv2), SR: skeletons generated from `smapi.interface.storage`.

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
    """Operations which act on Storage Repositories"""

    interface_name = "SR"

    def ls(self, dbg: str) -> List[str]:
        """[ls dbg]: returns a list of attached SRs

        dbg: Debug context from the caller
        returns srs (string list): The attached SRs

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.ls")

    def create(self, dbg: str, sr: str, device_config: Dict[str, str], physical_size: int) -> None:
        """[create task sr device_config physical_size]: creates a fresh SR

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        device_config: Host-local SR configuration (e.g. address information)
        physical_size: Requested maximum size of the SR (bytes)

        Raises:
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.create")

    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        """[attach task sr]: attaches the SR

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        device_config: Host-local SR configuration (e.g. address information)

        Raises:
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.attach")

    def detach(self, dbg: str, sr: str) -> None:
        """[detach task sr]: detaches the SR, first detaching and/or deactivating any active VDIs. This may
        fail with Sr_not_attached, or any error from VDI.detach or VDI.deactivate.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.detach")

    def destroy(self, dbg: str, sr: str) -> None:
        """[destroy sr]: destroys (i.e. makes unattachable and unprobeable) the [sr], first detaching and/or
        deactivating any active VDIs. This may fail with Sr_not_attached, or any error from VDI.detach or
        VDI.deactivate.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.destroy")

    def reset(self, dbg: str, sr: str) -> None:
        """[reset task sr]: declares that the SR has been completely reset, e.g. by rebooting the VM hosting
        the SR backend.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.reset")

    def scan(self, dbg: str, sr: str) -> List[Any]:
        """[scan task sr] returns a list of VDIs contained within an attached SR

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        returns vdis (vdi_info list): List of all the visible VDIs in the SR

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.scan")

    def set_name_label(self, dbg: str, sr: str, new_name_label: str) -> None:
        """Extension: [set_name_label task sr new_name_label] renames the SR

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        new_name_label: The new name

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.set_name_label")

    def set_name_description(self, dbg: str, sr: str, new_name_description: str) -> None:
        """Extension: [set_name_description task sr new_name_description] changes the SR's description

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        new_name_description: The new description

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.set_name_description")

    def stat(self, dbg: str, sr: str) -> Any:
        """Extension: [stat task sr] returns the size, free space and health of an attached SR

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        returns sr_info (sr_info): The SR's state

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.stat")

    def probe(self, dbg: str, device_config: Dict[str, str], sm_config: Dict[str, str]) -> Any:
        """Extension: [probe task device_config sm_config] looks at the storage [device_config] reaches and
        reports what could be attached there

        dbg: Debug context from the caller
        device_config: Host-local SR configuration (e.g. address information)
        sm_config: Driver-specific probe options
        returns result (probe_result): What was found

        Raises:
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("SR.probe")


__all__ = ["SR_skeleton"]
