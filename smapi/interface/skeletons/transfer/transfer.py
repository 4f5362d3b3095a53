"""The Transfer API, Transfer: skeletons generated from `smapi.interface.transfer`.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.

Subclass a skeleton and override the verbs your driver supports; every other verb raises `Unimplemented`
naming itself, which every transport reports as a typed error. Each verb's docstring lists the errors it
documents ("Raises:"); besides those, any verb may raise `Unimplemented` (until a driver overrides it) and
`Invalid_argument` (a missing or mistyped argument, found by the dispatcher before the verb runs).
"""

from __future__ import annotations

from typing import Any, Optional

from smapi.interface.errors import Unimplemented
from smapi.interface.skeleton_base import Skeleton


class Transfer_skeleton(Skeleton):
    """Expose VDIs on the network for bulk data transfer"""

    interface_name = "Transfer"

    def cleanup(self) -> str:
        """Cleans up resources that were left over from a VDI that was unexposed due to a timeout or failed API
        calls.

        returns result (string): The string "OK" on success

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.cleanup")

    def expose(
        self,
        transfer_mode: Any,
        vdi_uuid: str,
        network_uuid: str,
        read_only: Optional[Any] = None,
        network_mode: Optional[Any] = None,
        use_ssl: Optional[Any] = None,
        network_port: Optional[str] = None,
        timeout_minutes: Optional[str] = None,
        get_log: Optional[Any] = None,
        network_ip: Optional[str] = None,
        network_mask: Optional[str] = None,
        network_gateway: Optional[str] = None,
        network_mac: Optional[str] = None,
        expose_vhd: Optional[Any] = None,
    ) -> str:
        """Exposes a specified VDI on the network. The call blocks until the transfer services are set up and
        ready to accept connections.

        transfer_mode: "http", "bits" or "iscsi"
        vdi_uuid: VDI UUID of the disk to expose
        network_uuid: The network the VDI should be visible on; "management" for the management network
        read_only: "true" or "false"; defaults to "false"
        network_mode: "dhcp" or "manual"; defaults to "dhcp"
        use_ssl: "True" or "False"; defaults to "False". Only for HTTP and BITS
        network_port: Port to listen on; defaults to 80, 443 or 3260
        timeout_minutes: Non-negative integer: unexpose this many minutes after the last connection ends; 0
            or missing: never
        get_log: "true" to keep the server logs at unexpose
        network_ip: Address to use when network_mode is "manual"
        network_mask: Netmask when network_mode is "manual"
        network_gateway: Gateway when network_mode is "manual"
        network_mac: MAC address of the exposing interface (ignored: smapi exposes from the host itself)
        expose_vhd: "true" to also expose the VDI as a VHD (url_full_vhd)
        returns record_handle (string): An opaque handle for later calls

        Raises:
            VDINotFound: The VDI uuid is not known to this host
            VDIInUse: The VDI is already exposed or in use
            SnapshotTreeTooLong: The number of snapshots is 15 or greater
            ArgumentError: A Transfer API argument is missing or invalid
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.expose")

    def expose_forest(
        self,
        vm_uuids: str,
        network_uuid: str,
        read_only: Optional[Any] = None,
        network_mode: Optional[Any] = None,
        use_ssl: Optional[Any] = None,
        network_port: Optional[str] = None,
        timeout_minutes: Optional[str] = None,
        get_log: Optional[Any] = None,
        network_ip: Optional[str] = None,
        network_mask: Optional[str] = None,
        network_gateway: Optional[str] = None,
    ) -> str:
        """Exposes the entire VDI forest of the given VMs; the transfer mode is always BITS.

        vm_uuids: Comma-separated VM uuids
        network_uuid: The network the VDI should be visible on; "management" for the management network
        read_only: "true" or "false"; defaults to "false"
        network_mode: "dhcp" or "manual"; defaults to "dhcp"
        use_ssl: "True" or "False"; defaults to "False". Only for HTTP and BITS
        network_port: Port to listen on; defaults to 80, 443 or 3260
        timeout_minutes: Non-negative integer: unexpose this many minutes after the last connection ends; 0
            or missing: never
        get_log: "true" to keep the server logs at unexpose
        network_ip: Address to use when network_mode is "manual"
        network_mask: Netmask when network_mode is "manual"
        network_gateway: Gateway when network_mode is "manual"
        returns record_handles (string): Comma-separated record handles

        Raises:
            VDINotFound: The VDI uuid is not known to this host
            SnapshotTreeTooLong: The number of snapshots is 15 or greater
            ArgumentError: A Transfer API argument is missing or invalid
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.expose_forest")

    def get_import_instructions(self, vdi_uuid: str) -> str:
        """Returns the steps a client should take to import an exported snapshot tree, from the VM metadata
        uploaded into a VDI.

        vdi_uuid: The VDI that holds the exported VM metadata
        returns instructions (string): The import instructions

        Raises:
            VDINotFound: The VDI uuid is not known to this host
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.get_import_instructions")

    def get_record(self, record_handle: Optional[str] = None, vdi_uuid: Optional[str] = None) -> str:
        """Retrieves the record of an exposure, by record handle or by VDI uuid.

        record_handle: The record handle returned by expose
        vdi_uuid: A VDI uuid, exposed or not
        returns record (string): An XML transfer_record

        Raises:
            VDINotFound: The VDI uuid is not known to this host
            ArgumentError: A Transfer API argument is missing or invalid
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.get_record")

    def number_of_ip_addresses_needed(self, vm_uuids: str) -> str:
        """The number of addresses needed to expose the forest of the given VMs with static addresses.

        vm_uuids: Comma-separated VM uuids
        returns count (string): The number, as a decimal string

        Raises:
            SnapshotTreeTooLong: The number of snapshots is 15 or greater
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.number_of_ip_addresses_needed")

    def prepare_transfer_vm_template(self) -> str:
        """Ensures the transfer template is installed (smapi exposes from the host, so there is none to
        install).

        returns template (string): The template reference

        Raises:
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.prepare_transfer_vm_template")

    def save_logs(self, record_handle: str) -> str:
        """Retrieves the logs of an exposure and stores them on the host.

        record_handle: The record handle returned by expose
        returns url (string): Where the logs were stored

        Raises:
            VDINotFound: The VDI uuid is not known to this host
            VDINotInUse: The VDI is not currently exposed by the transfer service
            LogsNotFound: The exposure's log files could not be found in time
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.save_logs")

    def unexpose(self, record_handle: str) -> str:
        """Stops exposing the VDI of a record handle.

        record_handle: The record handle returned by expose
        returns result (string): The string "OK" on success

        Raises:
            VDINotInUse: The VDI is not currently exposed by the transfer service
            Unimplemented, Invalid_argument: see the module docstring
        """
        raise Unimplemented("Transfer.unexpose")


__all__ = ["Transfer_skeleton"]
