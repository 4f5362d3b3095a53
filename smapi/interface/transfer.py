"""The Transfer API (seed 000): expose a VDI over HTTP, BITS or iSCSI and manage those exposures.

Every argument is a string, as in the XenAPI host-plugin calling convention the original used
(`host.call_plugin(..., fn, args)`); optional arguments may be left out.
"""

from __future__ import annotations

from smapi.interface.errors import FRAMEWORK_ERRORS, TRANSFER_ERRORS
from smapi.interface.model import Api, Interface, Method, Param
from smapi.interface.types import STRING, Enum_, Optional_

transfer_mode = Enum_("transfer_mode", ("http", "bits", "iscsi"), "How the VDI is exposed")
bool_string = Enum_("bool_string", ("true", "false"), "\"true\" or \"false\" (any case)", case_insensitive=True)
network_mode = Enum_("network_mode", ("dhcp", "manual"), "How the exposure gets its address")


def _opt(name: str, typ, text: str) -> Param:
    return Param(name, Optional_(typ), text, default=None)


_network_args = (
    Param("network_uuid", STRING,
          "The network the VDI should be visible on; \"management\" for the management network"),
    _opt("read_only", bool_string, "\"true\" or \"false\"; defaults to \"false\""),
    _opt("network_mode", network_mode, "\"dhcp\" or \"manual\"; defaults to \"dhcp\""),
    _opt("use_ssl", bool_string, "\"True\" or \"False\"; defaults to \"False\". Only for HTTP and BITS"),
    _opt("network_port", STRING, "Port to listen on; defaults to 80, 443 or 3260"),
    _opt("timeout_minutes", STRING,
         "Non-negative integer: unexpose this many minutes after the last connection ends; 0 or missing: never"),
    _opt("get_log", bool_string, "\"true\" to keep the server logs at unexpose"),
    _opt("network_ip", STRING, "Address to use when network_mode is \"manual\""),
    _opt("network_mask", STRING, "Netmask when network_mode is \"manual\""),
    _opt("network_gateway", STRING, "Gateway when network_mode is \"manual\""),
)

Transfer = Interface(
    "Transfer",
    "Expose VDIs on the network for bulk data transfer",
    (
        Method("cleanup",
               "Cleans up resources that were left over from a VDI that was unexposed due to a timeout or failed "
               "API calls.",
               (), Param("result", STRING, "The string \"OK\" on success")),
        Method("expose",
               "Exposes a specified VDI on the network. The call blocks until the transfer services are set up "
               "and ready to accept connections.",
               (Param("transfer_mode", transfer_mode, "\"http\", \"bits\" or \"iscsi\""),
                Param("vdi_uuid", STRING, "VDI UUID of the disk to expose"),
                *_network_args,
                _opt("network_mac", STRING, "MAC address of the exposing interface (ignored: smapi exposes from "
                     "the host itself)"),
                _opt("expose_vhd", bool_string, "\"true\" to also expose the VDI as a VHD (url_full_vhd)")),
               Param("record_handle", STRING, "An opaque handle for later calls"),
               ("VDINotFound", "VDIInUse", "SnapshotTreeTooLong", "ArgumentError")),
        Method("expose_forest",
               "Exposes the entire VDI forest of the given VMs; the transfer mode is always BITS.",
               (Param("vm_uuids", STRING, "Comma-separated VM uuids"), *_network_args),
               Param("record_handles", STRING, "Comma-separated record handles"),
               ("VDINotFound", "SnapshotTreeTooLong", "ArgumentError")),
        Method("get_import_instructions",
               "Returns the steps a client should take to import an exported snapshot tree, from the VM metadata "
               "uploaded into a VDI.",
               (Param("vdi_uuid", STRING, "The VDI that holds the exported VM metadata"),),
               Param("instructions", STRING, "The import instructions"), ("VDINotFound",)),
        Method("get_record",
               "Retrieves the record of an exposure, by record handle or by VDI uuid.",
               (_opt("record_handle", STRING, "The record handle returned by expose"),
                _opt("vdi_uuid", STRING, "A VDI uuid, exposed or not")),
               Param("record", STRING, "An XML transfer_record"), ("VDINotFound", "ArgumentError")),
        Method("number_of_ip_addresses_needed",
               "The number of addresses needed to expose the forest of the given VMs with static addresses.",
               (Param("vm_uuids", STRING, "Comma-separated VM uuids"),),
               Param("count", STRING, "The number, as a decimal string"), ("SnapshotTreeTooLong",)),
        Method("prepare_transfer_vm_template",
               "Ensures the transfer template is installed (smapi exposes from the host, so there is none to "
               "install).",
               (), Param("template", STRING, "The template reference")),
        Method("save_logs",
               "Retrieves the logs of an exposure and stores them on the host.",
               (Param("record_handle", STRING, "The record handle returned by expose"),),
               Param("url", STRING, "Where the logs were stored"), ("VDINotFound", "VDINotInUse", "LogsNotFound")),
        Method("unexpose",
               "Stops exposing the VDI of a record handle.",
               (Param("record_handle", STRING, "The record handle returned by expose"),),
               Param("result", STRING, "The string \"OK\" on success"), ("VDINotInUse",)),
    ),
)

TRANSFER = Api(
    name="transfer",
    title="The Transfer API",
    description="Expose VDIs over HTTP, BITS and iSCSI for bulk import and export.",
    version="1.0",
    interfaces=(Transfer,),
    errors=TRANSFER_ERRORS + FRAMEWORK_ERRORS,
    source="shared/seeds/000 (Transfer Plugin API)",
)
