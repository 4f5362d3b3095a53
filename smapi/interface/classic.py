"""The classic (SMAPIv1) driver command set, as xapi sends it to `<Type>SR` executables.

xapi runs the executable with one argv argument: an XML-RPC methodCall whose single struct carries
`command`, positional `args` (strings), `device_config` and, depending on the command, `sr_uuid`,
`vdi_uuid`, `vdi_location`, `driver_params`, ... The definitions below name each positional argument and the
struct keys each command needs, so the classic executable can check a call before running it.
"""

from __future__ import annotations

from typing import Dict, Tuple

from smapi.interface.frozen import frozen
from smapi.interface.types import BOOL, INT64, STRING, STRING_MAP, UNIT, Field, ListOf, Record, Type


@frozen
class ClassicArg:
    name: str
    #: how the string in `args` is to be read: STRING, INT64 (decimal) or BOOL ("true"/"false")
    type: Type
    description: str


@frozen
class ClassicCommand:
    name: str
    description: str
    args: Tuple[ClassicArg, ...] = ()
    #: struct keys besides command/args/device_config that the command needs
    keys: Tuple[str, ...] = ()
    result: Type = UNIT
    #: True when xapi calls it without a session and the SR object must not be constructed
    static: bool = False


vdi_ref_result = Record(
    "classic_vdi",
    (Field("uuid", STRING, "The VDI's uuid"), Field("location", STRING, "The VDI's location in the SR")),
    "What vdi_create / vdi_snapshot / vdi_clone / vdi_resize / vdi_introduce return",
)

configuration_entry = Record(
    "classic_configuration_entry",
    (Field("key", STRING, "A device_config key"), Field("description", STRING, "What it means")),
    "One device_config key a driver understands",
)

driver_info = Record(
    "driver_info",
    (
        Field("name", STRING, "Short name"),
        Field("description", STRING, "Description"),
        Field("vendor", STRING, "Vendor"),
        Field("copyright", STRING, "Copyright"),
        Field("driver_version", STRING, "Driver version"),
        Field("required_api_version", STRING, "Minimum SM API version"),
        Field("capabilities", ListOf(STRING), "Capability names (SR_PROBE, VDI_CREATE, ...)"),
        Field("configuration", ListOf(configuration_entry), "device_config keys"),
    ),
    "What sr_get_driver_info returns",
)

attach_result = Record(
    "classic_attach",
    (
        Field("params", STRING, "A block device path, when there is one (xapi makes any params a BlockDevice)",
              default=""),
        Field("params_nbd", STRING, "nbd:unix:<socket>:exportname=<vdi>", default=""),
        Field("o_direct", BOOL, "Open with O_DIRECT", default=True),
        Field("o_direct_reason", STRING, "Why o_direct has its value", default=""),
        Field("xenstore_data", STRING_MAP, "Extra xenstore keys", default_factory=dict),
    ),
    "What vdi_attach returns",
)

_SR = ("sr_uuid",)
_VDI = ("sr_uuid", "vdi_uuid")
_writable = ClassicArg("writable", BOOL, "\"true\" to attach/activate read-write")

COMMANDS: Dict[str, ClassicCommand] = {
    c.name: c
    for c in (
        ClassicCommand("sr_get_driver_info", "Describe the driver (no session, no SR object)", result=driver_info,
                       static=True),
        ClassicCommand("sr_create", "Create an SR", (ClassicArg("size", INT64, "Requested size (bytes)"),), _SR),
        ClassicCommand("sr_delete", "Destroy an SR", (), _SR),
        ClassicCommand("sr_attach", "Attach an SR", (), _SR),
        ClassicCommand("sr_detach", "Detach an SR", (), _SR),
        ClassicCommand("sr_scan", "Rescan the SR's VDIs", (), _SR),
        ClassicCommand("sr_update", "Refresh the SR's size figures", (), _SR),
        ClassicCommand("sr_probe", "Probe the storage; returns an XML document", (), (), STRING),
        ClassicCommand("sr_content_type", "The SR's content type", (), _SR, STRING),
        ClassicCommand(
            "vdi_create", "Create a VDI",
            (
                ClassicArg("size", INT64, "Virtual size (bytes)"),
                ClassicArg("name_label", STRING, "Name"),
                ClassicArg("name_description", STRING, "Description"),
                ClassicArg("metadata_of_pool", STRING, "Pool reference for a metadata VDI"),
                ClassicArg("is_a_snapshot", BOOL, "\"true\" if it is a snapshot"),
                ClassicArg("snapshot_time", STRING, "Snapshot time"),
                ClassicArg("snapshot_of", STRING, "The VDI it is a snapshot of"),
                ClassicArg("read_only", BOOL, "\"true\" for a read-only VDI"),
            ),
            _SR, vdi_ref_result),
        ClassicCommand("vdi_introduce", "Introduce an existing VDI", (), ("sr_uuid", "new_uuid", "vdi_location"),
                       vdi_ref_result),
        ClassicCommand("vdi_update", "Refresh the VDI's metadata", (), _VDI),
        ClassicCommand("vdi_delete", "Destroy a VDI", (), _VDI),
        ClassicCommand("vdi_attach", "Attach a VDI", (_writable,), _VDI, attach_result),
        ClassicCommand("vdi_detach", "Detach a VDI", (), _VDI),
        ClassicCommand("vdi_activate", "Activate a VDI", (_writable,), _VDI),
        ClassicCommand("vdi_deactivate", "Deactivate a VDI", (), _VDI),
        ClassicCommand("vdi_epoch_begin", "A VM using the VDI starts", (), _VDI),
        ClassicCommand("vdi_epoch_end", "A VM using the VDI stops", (), _VDI),
        ClassicCommand("vdi_snapshot", "Snapshot a VDI", (), _VDI, vdi_ref_result),
        ClassicCommand("vdi_clone", "Clone a VDI", (), _VDI, vdi_ref_result),
        ClassicCommand("vdi_resize", "Grow a VDI", (ClassicArg("new_size", INT64, "New virtual size (bytes)"),),
                       _VDI, vdi_ref_result),
        ClassicCommand("vdi_resize_online", "Grow an attached VDI",
                       (ClassicArg("new_size", INT64, "New virtual size (bytes)"),), _VDI, vdi_ref_result),
        ClassicCommand("vdi_generate_config", "A methodCall that re-attaches the VDI without a session", (), _VDI,
                       STRING),
        ClassicCommand("vdi_attach_from_config", "Attach from a generated config", (), _VDI, attach_result),
        ClassicCommand("vdi_detach_from_config", "Detach what attach_from_config attached", (), _VDI),
        ClassicCommand("vdi_compose", "Layer vdi_uuid's updates onto the VDI named by the argument",
                       (ClassicArg("vdi1", STRING, "The VDI to layer onto (uuid or location)"),), _VDI),
        ClassicCommand("vdi_enable_cbt", "Turn on changed-block tracking", (), _VDI),
        ClassicCommand("vdi_disable_cbt", "Turn off changed-block tracking", (), _VDI),
        ClassicCommand("vdi_data_destroy", "Delete the data, keeping CBT metadata", (), _VDI),
        ClassicCommand("vdi_list_changed_blocks", "Changed blocks since another VDI (base64 bitmap)",
                       (ClassicArg("vdi_to", STRING, "The later VDI"),), _VDI, STRING),
    )
}

#: every command's result type is one of these; listed for the reference docs
CLASSIC_TYPES = (vdi_ref_result, driver_info, attach_result)
