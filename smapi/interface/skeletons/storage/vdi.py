"""The storage interface (SMAPIv2), VDI: skeletons generated from `smapi.interface.storage`.

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


class VDI_skeleton(Skeleton):
    """Operations which operate on Virtual Disk Images"""

    interface_name = "VDI"

    def create(self, dbg: str, sr: str, vdi_info: Any) -> Any:
        """[create task sr vdi_info params] creates a new VDI in [sr] using [vdi_info]. Some fields in the
        [vdi_info] may be modified (e.g. rounded up), so the function returns the vdi_info which was used.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi_info: The Virtual Disk Image properties
        returns new_vdi (vdi_info): The created Virtual Disk Image

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.create")

    def snapshot(self, dbg: str, sr: str, vdi_info: Any) -> Any:
        """[snapshot task sr vdi_info] creates a new VDI which is a snapshot of [vdi_info.vdi] in [sr]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi_info: The Virtual Disk Image properties
        returns new_vdi (vdi_info): The snapshot

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.snapshot")

    def clone(self, dbg: str, sr: str, vdi_info: Any) -> Any:
        """[clone task sr vdi_info] creates a new VDI which is a clone of [vdi_info.vdi] in [sr]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi_info: The Virtual Disk Image properties
        returns new_vdi (vdi_info): The clone

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.clone")

    def destroy(self, dbg: str, sr: str, vdi: str) -> None:
        """[destroy task sr vdi] removes [vdi] from [sr]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.destroy")

    def stat(self, dbg: str, sr: str, vdi: str) -> Any:
        """[stat task sr vdi] returns metadata associated with VDI [vdi] in SR [sr].

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        returns vdi_info (vdi_info): VDI metadata

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.stat")

    def set_persistent(self, dbg: str, sr: str, vdi: str, persistent: bool) -> None:
        """[set_persistent task sr vdi persistent] configures whether a VDI's contents should be persisted
        across epochs

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        persistent: New value of the VDI persistent field

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.set_persistent")

    def epoch_begin(self, dbg: str, sr: str, vdi: str) -> None:
        """[epoch_begin task sr vdi] signals that VDI is about to be connected to a fresh (started, rebooted)
        VM.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.epoch_begin")

    def epoch_end(self, dbg: str, sr: str, vdi: str) -> None:
        """[epoch_end task sr vdi] signals that VDI is about to be disconnected from a shutting-down/rebooting
        VM.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.epoch_end")

    def attach(self, dbg: str, dp: str, sr: str, vdi: str, read_write: bool) -> Any:
        """[attach task dp sr vdi read_write] returns the [params] for a given [vdi] in [sr] which can be
        written to if (but not necessarily only if) [read_write] is true

        dbg: Debug context from the caller
        dp: DataPath to attach this VDI for
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        read_write: If true then the DataPath will be used read/write, false otherwise
        returns device (attach_info): backend device configuration

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Illegal_transition: The requested VDI state transition is invalid
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.attach")

    def activate(self, dbg: str, dp: str, sr: str, vdi: str) -> None:
        """[activate task dp sr vdi] signals the desire to immediately use [vdi]. This client must have called
        [attach] on the [vdi] first.

        dbg: Debug context from the caller
        dp: DataPath to activate
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Illegal_transition: The requested VDI state transition is invalid
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.activate")

    def deactivate(self, dbg: str, dp: str, sr: str, vdi: str) -> None:
        """[deactivate task dp sr vdi] signals that this client has stopped reading (and writing) [vdi].

        dbg: Debug context from the caller
        dp: DataPath to deactivate
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Illegal_transition: The requested VDI state transition is invalid
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.deactivate")

    def detach(self, dbg: str, dp: str, sr: str, vdi: str) -> None:
        """[detach task dp sr vdi] signals that this client no-longer needs the [params] to be valid.

        dbg: Debug context from the caller
        dp: DataPath to detach
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Illegal_transition: The requested VDI state transition is invalid
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.detach")

    def copy(self, dbg: str, sr: str, vdi: str, url: str, dest: str) -> str:
        """[copy task sr vdi url sr2] copies the data from [vdi] into a remote system [url]'s [sr2]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        url: URL which identifies a remote system
        dest: The Storage Repository to operate within
        returns new_vdi (vdi): The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.copy")

    def get_url(self, dbg: str, sr: str, vdi: str) -> str:
        """[get_url task sr vdi] returns a URL suitable for accessing disk data directly.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        returns url (string): URL which represents this VDI

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.get_url")

    def get_by_name(self, dbg: str, sr: str, name: str) -> Any:
        """[get_by_name task sr name] returns the vdi within [sr] with [name]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        name: Name of the VDI to return
        returns vdi_info (vdi_info): The Virtual Disk Image properties

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Does_not_exist: The object does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.get_by_name")

    def set_content_id(self, dbg: str, sr: str, vdi: str, content_id: str) -> None:
        """[set_content_id task sr vdi content_id] tells the storage backend that a VDI has an updated
        [content_id]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        content_id: New value of the VDI content_id field

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.set_content_id")

    def compose(self, dbg: str, sr: str, vdi1: str, vdi2: str) -> None:
        """[compose task sr vdi1 vdi2] layers the updates from [vdi2] onto [vdi1], modifying [vdi2]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi1: The Virtual Disk Image to operate on
        vdi2: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.compose")

    def similar_content(self, dbg: str, sr: str, vdi: str) -> List[Any]:
        """[similar_content sr vdi] returns a list, most similar first, of disks with recognizably similar
        content

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        returns vdi_infos (vdi_info list): VDIs with recognizably similar content, most similar first

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.similar_content")

    def resize(self, dbg: str, sr: str, vdi: str, new_size: int) -> int:
        """Extension: [resize task sr vdi new_size] grows [vdi] to at least [new_size] bytes and returns the
        new virtual size (rounded up as the SR requires). Shrinking is refused.

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        new_size: The requested virtual size (bytes)
        returns new_size (int64): The virtual size after the resize (bytes)

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.resize")

    def set_name_label(self, dbg: str, sr: str, vdi: str, new_name_label: str) -> None:
        """Extension: [set_name_label task sr vdi new_name_label] renames [vdi]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        new_name_label: The new name

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.set_name_label")

    def set_name_description(self, dbg: str, sr: str, vdi: str, new_name_description: str) -> None:
        """Extension: [set_name_description task sr vdi new_name_description] changes [vdi]'s description

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        new_name_description: The new description

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.set_name_description")

    def add_to_sm_config(self, dbg: str, sr: str, vdi: str, key: str, value: str) -> None:
        """Extension: [add_to_sm_config task sr vdi key value] sets sm_config[key]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        key: The key
        value: The value

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.add_to_sm_config")

    def remove_from_sm_config(self, dbg: str, sr: str, vdi: str, key: str) -> None:
        """Extension: [remove_from_sm_config task sr vdi key] removes sm_config[key]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        key: The key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.remove_from_sm_config")

    def enable_cbt(self, dbg: str, sr: str, vdi: str) -> None:
        """[enable_cbt dbg sr vdi] enables changed block tracking for [vdi]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.enable_cbt")

    def disable_cbt(self, dbg: str, sr: str, vdi: str) -> None:
        """[disable_cbt dbg sr vdi] disables changed block tracking for [vdi]

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.disable_cbt")

    def data_destroy(self, dbg: str, sr: str, vdi: str) -> None:
        """[data_destroy dbg sr vdi] deletes the data of the snapshot [vdi] without deleting its changed block
        tracking metadata

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.data_destroy")

    def list_changed_blocks(self, dbg: str, sr: str, vdi_from: str, vdi_tp: str) -> str:
        """[list_changed_blocks dbg sr vdi_from vdi_to] returns the blocks that have changed between [vdi_from]
        and [vdi_to] as a base64-encoded bitmap string (one bit per 64 KiB block, the first block in the
        most significant bit of the first byte)

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi_from: The earlier snapshot
        vdi_tp: The later snapshot of the same VDI, or that VDI itself
        returns changed_blocks (string): The base64-encoded bitmap

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.list_changed_blocks")

    def compare(self, dbg: str, sr: str, vdi: str, vdi2: str) -> str:
        """Extension: [compare task sr vdi vdi2] returns the 64 KiB blocks that may differ between [vdi] and
        [vdi2] as a base64-encoded bitmap (as list_changed_blocks); when they are unrelated, the blocks
        [vdi] holds data in

        dbg: Debug context from the caller
        sr: The Storage Repository to operate within
        vdi: The Virtual Disk Image to operate on
        vdi2: The other VDI
        returns changed_blocks (string): The base64-encoded bitmap

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Vdi_does_not_exist: The specified VDI could not be found in the SR
            Backend_error: A backend-specific error occurred
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("VDI.compare")


__all__ = ["VDI_skeleton"]
