"""SMAPIv3 plugins (xapi-storage), Volume: skeletons generated from `smapi.interface.v3`.

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


class Volume_skeleton(Skeleton):
    """Operations on volumes"""

    interface_name = "Volume"

    def create(self, dbg: str, sr: str, name: str, description: str, size: int, sharable: bool) -> Any:
        """[create dbg sr name description size sharable] creates a volume of at least [size] bytes

        dbg: Debug context from the caller
        sr: The SR reference
        name: Short name
        description: Longer description
        size: Requested virtual size (bytes)
        sharable: Whether several hosts may attach it at once
        returns volume (volume): The new volume

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.create")

    def snapshot(self, dbg: str, sr: str, key: str) -> Any:
        """[snapshot dbg sr key] creates a read-only snapshot of the volume

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        returns volume (volume): The snapshot

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.snapshot")

    def clone(self, dbg: str, sr: str, key: str) -> Any:
        """[clone dbg sr key] creates a writable clone of the volume

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        returns volume (volume): The clone

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.clone")

    def copy(self, dbg: str, sr: str, key: str, dest_sr: str) -> Any:
        """[copy dbg sr key dest_sr] copies the volume into another attached SR (VDI_COPY feature)

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        dest_sr: The destination SR
        returns volume (volume): The copy

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.copy")

    def destroy(self, dbg: str, sr: str, key: str) -> None:
        """[destroy dbg sr key] removes the volume

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.destroy")

    def set_name(self, dbg: str, sr: str, key: str, new_name: str) -> None:
        """[set_name dbg sr key new_name] renames the volume

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        new_name: The new name

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.set_name")

    def set_description(self, dbg: str, sr: str, key: str, new_description: str) -> None:
        """[set_description dbg sr key new_description] changes the description

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        new_description: The new description

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.set_description")

    def set(self, dbg: str, sr: str, key: str, k: str, v: str) -> None:
        """[set dbg sr key k v] stores a key/value pair with the volume

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        k: The key
        v: The value

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.set")

    def unset(self, dbg: str, sr: str, key: str, k: str) -> None:
        """[unset dbg sr key k] removes a key from the volume's metadata

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        k: The key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.unset")

    def resize(self, dbg: str, sr: str, key: str, new_size: int) -> None:
        """[resize dbg sr key new_size] grows the volume to at least [new_size] bytes

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        new_size: The new virtual size (bytes)

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.resize")

    def stat(self, dbg: str, sr: str, key: str) -> Any:
        """[stat dbg sr key] returns the volume's metadata

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        returns volume (volume): The volume

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.stat")

    def compare(self, dbg: str, sr: str, key: str, key2: str) -> Any:
        """[compare dbg sr key key2] lists the blocks that differ between two volumes

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        key2: The other volume
        returns blocklist (blocklist): The differing blocks

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.compare")

    def similar_content(self, dbg: str, sr: str, key: str) -> List[str]:
        """[similar_content dbg sr key] lists volumes with similar content, most similar first

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        returns keys (key list): Volume keys

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.similar_content")

    def enable_cbt(self, dbg: str, sr: str, key: str) -> None:
        """[enable_cbt dbg sr key] turns on changed-block tracking

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.enable_cbt")

    def disable_cbt(self, dbg: str, sr: str, key: str) -> None:
        """[disable_cbt dbg sr key] turns off changed-block tracking

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.disable_cbt")

    def data_destroy(self, dbg: str, sr: str, key: str) -> None:
        """[data_destroy dbg sr key] deletes the data, keeping the CBT metadata

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.data_destroy")

    def list_changed_blocks(self, dbg: str, sr: str, key: str, key2: str, offset: int, length: int) -> Any:
        """[list_changed_blocks dbg sr key key2 offset length] lists blocks changed between two snapshots

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        key2: The later volume
        offset: Start (bytes)
        length: Length (bytes)
        returns changed_blocks (changed_blocks): The changed blocks

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.list_changed_blocks")

    def compose(self, dbg: str, sr: str, key: str, key2: str) -> None:
        """[compose dbg sr key key2] layers the updates of the child volume [key] onto the parent volume
        [key2], modifying [key] only (VDI_COMPOSE feature)

        dbg: Debug context from the caller
        sr: The SR reference
        key: The volume key
        key2: The parent volume

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.compose")

    def revert(self, dbg: str, sr: str, snapshot: str, key: str) -> None:
        """[revert dbg sr snapshot key] makes volume [key] hold the contents of the read-only [snapshot]; the
        volume keeps its identity

        dbg: Debug context from the caller
        sr: The SR reference
        snapshot: The snapshot whose contents the volume takes
        key: The volume key

        Raises:
            Sr_not_attached: An SR must be attached in order to access VDIs
            Volume_does_not_exist: The volume does not exist
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Volume.revert")


__all__ = ["Volume_skeleton"]
