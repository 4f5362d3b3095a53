"""SMAPIv3 plugins (xapi-storage): skeletons generated from `smapi.interface.v3`.

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


__all__ = ["Plugin_skeleton", "SR_skeleton", "Volume_skeleton", "Datapath_skeleton", "Data_skeleton"]
