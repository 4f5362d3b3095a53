"""The storage interface (seed 001, the SMAPIv2 IDL): Query, VDI and SR with their records and errors.

The methods and records are exactly those of the seed. A few verbs that the later `storage_interface.ml`
added and that every real SR needs (SR.stat, SR.probe, VDI.resize) are marked as extensions; a toolstack
that does not know them never calls them.
"""

from __future__ import annotations

from smapi.interface.errors import FRAMEWORK_ERRORS, STORAGE_ERRORS
from smapi.interface.model import Api, Interface, Method, Param
from smapi.interface.types import (
    BOOL,
    INT64,
    STRING,
    STRING_MAP,
    Alias,
    Case,
    Field,
    ListOf,
    Optional_,
    Record,
    Variant,
)

debug_info = Alias("debug_info", STRING, "Debug context from the caller")
vdi = Alias("vdi", STRING, "Primary key for a Virtual Disk Image (e.g. path on a storage system)")
sr = Alias("sr", STRING, "Primary key for a Storage Repository (e.g. a UUID)")
content_id = Alias(
    "content_id", STRING,
    "Identifies the contents (i.e. bytes with) a VDI. Two VDIs with the same content_id must have the same "
    "content.",
)

EPOCH = "19700101T00:00:00Z"

vdi_info = Record(
    "vdi_info",
    (
        Field("vdi", vdi, "The unique id of this VDI", default=""),
        Field("content_id", content_id,
              "The unique id of the VDI contents. If two VDIs have the same content_id then they must have "
              "the same data inside", default=""),
        Field("name_label", STRING, "Human-readable name of the VDI", default=""),
        Field("name_description", STRING, "Human-readable description of the VDI", default=""),
        Field("ty", STRING, "Used by a toolstack to remember why a VDI was created", default="user"),
        Field("metadata_of_pool", STRING,
              "In the special case of a pool metadata containing VDI, this is the pool reference", default=""),
        Field("is_a_snapshot", BOOL, "True if the VDI is a snapshot of another VDI", default=False),
        Field("snapshot_time", STRING, "If is_a_snapshot is true then this is the time the snapshot was created",
              default=EPOCH),
        Field("snapshot_of", STRING, "If is_a_snapshot is true then this is the VDI which was snapshotted",
              default=""),
        Field("read_only", BOOL, "If true then this VDI is stored on read-only media", default=False),
        Field("virtual_size", INT64, "Size of the VDI from the perspective of a VM (in bytes)"),
        Field("physical_utilisation", INT64,
              "Amount of space currently being consumed on the physical storage media", default=0),
        Field("persistent", BOOL,
              "If true then disk modifications are preserved over VM reboot and shutdown", default=True),
        Field("sm_config", STRING_MAP, "Backend-specific parameters", default_factory=dict),
    ),
    "All per-VDI properties",
)

attach_info = Record(
    "attach_info",
    (
        Field("params", STRING, "The xenstore backend params key"),
        Field("xenstore_data", STRING_MAP, "Additional xenstore backend device keys", default_factory=dict),
        # Later storage_interface.ml / the classic vdi_attach result: omitted when the driver does not set them.
        Field("params_nbd", Optional_(STRING),
              "Extension: an NBD URI for the disk, `nbd:unix:<socket>:exportname=<name>`"),
        Field("o_direct", Optional_(BOOL), "Extension: whether the consumer should open with O_DIRECT"),
        Field("o_direct_reason", Optional_(STRING), "Extension: why o_direct has its value"),
    ),
    "Configuration for blkback",
)

smapi_version = Variant(
    "smapi_version", (Case("SMAPIv1"), Case("SMAPIv2"), Case("SMAPIv3")),
    "Extension: which generation of the storage interface an implementation speaks",
)

query_result = Record(
    "query_result",
    (
        Field("driver", STRING, "driver, used in the XenAPI as SR.type"),
        Field("name", STRING, "short name"),
        Field("description", STRING, "description"),
        Field("vendor", STRING, "entity which produced this implementation"),
        Field("copyright", STRING, "copyright"),
        Field("version", STRING, "version"),
        Field("required_api_version", STRING, "minimum required API version"),
        Field("features", ListOf(STRING), "features supported by this plugin"),
        Field("configuration", STRING_MAP, "key/description pairs describing required device_config parameters"),
        # Beyond seed 001: today's xapi fails to unmarshal a query_result without these three.
        Field("required_cluster_stack", ListOf(STRING), "Extension: cluster stacks the SR needs (none)",
              default_factory=list),
        Field("supported_image_formats", ListOf(STRING), "Extension: image formats VDIs can have (vhd, raw)",
              default_factory=list),
        Field("smapi_version", smapi_version, "Extension: the storage interface generation serving the SR",
              default="SMAPIv2"),
    ),
    "properties of this implementation",
)

sr_health = Variant(
    "sr_health",
    (Case("Healthy"), Case("Recovering"), Case("Unreachable"), Case("Unavailable")),
    "Extension: the health of an SR",
)

sr_info = Record(
    "sr_info",
    (
        Field("sr_uuid", Optional_(STRING), "The SR's uuid, when it has one"),
        Field("name_label", STRING, "Human-readable name of the SR", default=""),
        Field("name_description", STRING, "Human-readable description of the SR", default=""),
        Field("total_space", INT64, "Total physical size of the backing storage (bytes)"),
        Field("free_space", INT64, "Free space on the backing storage (bytes)"),
        Field("clustered", BOOL, "Whether the SR is on clustered storage", default=False),
        Field("health", sr_health, "The SR's health", default="Healthy"),
    ),
    "Extension (SR.stat): the state of an attached SR",
)

probe = Record(
    "probe",
    (
        Field("configuration", STRING_MAP, "A device_config that reaches what was found"),
        Field("complete", BOOL, "True when the configuration is enough to attach an SR"),
        Field("sr", Optional_(sr_info), "The SR found there, if any"),
        Field("extra_info", STRING_MAP, "Driver-specific details", default_factory=dict),
    ),
    "Extension (SR.probe): one thing found by a probe",
)

probe_result = Variant(
    "probe_result",
    (
        Case("Raw", STRING, "Classic probe output: an XML document"),
        Case("Probe", ListOf(probe), "Structured probe results"),
    ),
    "Extension (SR.probe): what a probe found",
)

_dbg = Param("dbg", debug_info, "Debug context from the caller")
_sr = Param("sr", sr, "The Storage Repository to operate within")
_vdi = Param("vdi", vdi, "The Virtual Disk Image to operate on")
_vdi_info_in = Param("vdi_info", vdi_info, "The Virtual Disk Image properties")
_device_config = Param("device_config", STRING_MAP, "Host-local SR configuration (e.g. address information)")


def _dp(text: str) -> Param:
    return Param("dp", STRING, text)


Query = Interface(
    "Query",
    "Discover properties of this implementation",
    (
        Method("query", "Query the implementation and return its properties", (_dbg,),
               Param("query_result", query_result, "The properies of this implementation")),
        Method("diagnostics", "[diagnostics ()]: returns a printable set of backend diagnostic information.",
               (_dbg,),
               Param("diagnostics", STRING, "A string containing loggable human-readable diagnostics information")),
    ),
)

VDI = Interface(
    "VDI",
    "Operations which operate on Virtual Disk Images",
    (
        Method("create",
               "[create task sr vdi_info params] creates a new VDI in [sr] using [vdi_info]. Some fields in the "
               "[vdi_info] may be modified (e.g. rounded up), so the function returns the vdi_info which was used.",
               (_dbg, _sr, _vdi_info_in), Param("new_vdi", vdi_info, "The created Virtual Disk Image"),
               ("Sr_not_attached", "Backend_error")),
        Method("snapshot",
               "[snapshot task sr vdi_info] creates a new VDI which is a snapshot of [vdi_info.vdi] in [sr]",
               (_dbg, _sr, _vdi_info_in), Param("new_vdi", vdi_info, "The snapshot"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("clone", "[clone task sr vdi_info] creates a new VDI which is a clone of [vdi_info.vdi] in [sr]",
               (_dbg, _sr, _vdi_info_in), Param("new_vdi", vdi_info, "The clone"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("destroy", "[destroy task sr vdi] removes [vdi] from [sr]", (_dbg, _sr, _vdi), None,
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("stat", "[stat task sr vdi] returns metadata associated with VDI [vdi] in SR [sr].",
               (_dbg, _sr, _vdi), Param("vdi_info", vdi_info, "VDI metadata"),
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("set_persistent",
               "[set_persistent task sr vdi persistent] configures whether a VDI's contents should be persisted "
               "across epochs",
               (_dbg, _sr, _vdi, Param("persistent", BOOL, "New value of the VDI persistent field")), None,
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("epoch_begin",
               "[epoch_begin task sr vdi] signals that VDI is about to be connected to a fresh (started, "
               "rebooted) VM.",
               (_dbg, _sr, _vdi), None, ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("epoch_end",
               "[epoch_end task sr vdi] signals that VDI is about to be disconnected from a "
               "shutting-down/rebooting VM.",
               (_dbg, _sr, _vdi), None, ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("attach",
               "[attach task dp sr vdi read_write] returns the [params] for a given [vdi] in [sr] which can be "
               "written to if (but not necessarily only if) [read_write] is true",
               (_dbg, _dp("DataPath to attach this VDI for"), _sr, _vdi,
                Param("read_write", BOOL, "If true then the DataPath will be used read/write, false otherwise")),
               Param("device", attach_info, "backend device configuration"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Illegal_transition", "Backend_error")),
        Method("activate",
               "[activate task dp sr vdi] signals the desire to immediately use [vdi]. This client must have "
               "called [attach] on the [vdi] first.",
               (_dbg, _dp("DataPath to activate"), _sr, _vdi), None,
               ("Sr_not_attached", "Vdi_does_not_exist", "Illegal_transition")),
        Method("deactivate",
               "[deactivate task dp sr vdi] signals that this client has stopped reading (and writing) [vdi].",
               (_dbg, _dp("DataPath to deactivate"), _sr, _vdi), None,
               ("Sr_not_attached", "Vdi_does_not_exist", "Illegal_transition")),
        Method("detach",
               "[detach task dp sr vdi] signals that this client no-longer needs the [params] to be valid.",
               (_dbg, _dp("DataPath to detach"), _sr, _vdi), None,
               ("Sr_not_attached", "Vdi_does_not_exist", "Illegal_transition")),
        Method("copy", "[copy task sr vdi url sr2] copies the data from [vdi] into a remote system [url]'s [sr2]",
               (_dbg, _sr, _vdi, Param("url", STRING, "URL which identifies a remote system"),
                Param("dest", sr, "The Storage Repository to operate within")),
               Param("new_vdi", vdi, "The Virtual Disk Image to operate on"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("get_url", "[get_url task sr vdi] returns a URL suitable for accessing disk data directly.",
               (_dbg, _sr, _vdi), Param("url", STRING, "URL which represents this VDI"),
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("get_by_name", "[get_by_name task sr name] returns the vdi within [sr] with [name]",
               (_dbg, _sr, Param("name", STRING, "Name of the VDI to return")),
               Param("vdi_info", vdi_info, "The Virtual Disk Image properties"),
               ("Sr_not_attached", "Does_not_exist")),
        Method("set_content_id",
               "[set_content_id task sr vdi content_id] tells the storage backend that a VDI has an updated "
               "[content_id]",
               (_dbg, _sr, _vdi, Param("content_id", content_id, "New value of the VDI content_id field")), None,
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("compose", "[compose task sr vdi1 vdi2] layers the updates from [vdi2] onto [vdi1], modifying [vdi2]",
               (_dbg, _sr, Param("vdi1", vdi, "The Virtual Disk Image to operate on"),
                Param("vdi2", vdi, "The Virtual Disk Image to operate on")), None,
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("similar_content",
               "[similar_content sr vdi] returns a list, most similar first, of disks with recognizably similar "
               "content",
               (_dbg, _sr, _vdi),
               Param("vdi_infos", ListOf(vdi_info), "VDIs with recognizably similar content, most similar first"),
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("resize",
               "Extension: [resize task sr vdi new_size] grows [vdi] to at least [new_size] bytes and returns the "
               "new virtual size (rounded up as the SR requires). Shrinking is refused.",
               (_dbg, _sr, _vdi, Param("new_size", INT64, "The requested virtual size (bytes)")),
               Param("new_size", INT64, "The virtual size after the resize (bytes)"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("set_name_label", "Extension: [set_name_label task sr vdi new_name_label] renames [vdi]",
               (_dbg, _sr, _vdi, Param("new_name_label", STRING, "The new name")), None,
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("set_name_description",
               "Extension: [set_name_description task sr vdi new_name_description] changes [vdi]'s description",
               (_dbg, _sr, _vdi, Param("new_name_description", STRING, "The new description")), None,
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("add_to_sm_config", "Extension: [add_to_sm_config task sr vdi key value] sets sm_config[key]",
               (_dbg, _sr, _vdi, Param("key", STRING, "The key"), Param("value", STRING, "The value")), None,
               ("Sr_not_attached", "Vdi_does_not_exist")),
        Method("remove_from_sm_config", "Extension: [remove_from_sm_config task sr vdi key] removes sm_config[key]",
               (_dbg, _sr, _vdi, Param("key", STRING, "The key")), None,
               ("Sr_not_attached", "Vdi_does_not_exist")),
        # Changed-block tracking, as today's storage_interface.ml has it (VDI_CONFIG_CBT feature).
        Method("enable_cbt", "[enable_cbt dbg sr vdi] enables changed block tracking for [vdi]", (_dbg, _sr, _vdi),
               None, ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("disable_cbt", "[disable_cbt dbg sr vdi] disables changed block tracking for [vdi]",
               (_dbg, _sr, _vdi), None, ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("data_destroy", "[data_destroy dbg sr vdi] deletes the data of the snapshot [vdi] without deleting "
               "its changed block tracking metadata", (_dbg, _sr, _vdi), None,
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("list_changed_blocks",
               "[list_changed_blocks dbg sr vdi_from vdi_to] returns the blocks that have changed between "
               "[vdi_from] and [vdi_to] as a base64-encoded bitmap string (one bit per 64 KiB block, the first "
               "block in the most significant bit of the first byte)",
               # `vdi_tp` is upstream's wire name for the second VDI (storage_interface.ml spells it so).
               (_dbg, _sr, Param("vdi_from", vdi, "The earlier snapshot"),
                Param("vdi_tp", vdi, "The later snapshot of the same VDI, or that VDI itself")),
               Param("changed_blocks", STRING, "The base64-encoded bitmap"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
        Method("compare",
               "Extension: [compare task sr vdi vdi2] returns the 64 KiB blocks that may differ between [vdi] and "
               "[vdi2] as a base64-encoded bitmap (as list_changed_blocks); when they are unrelated, the blocks "
               "[vdi] holds data in",
               (_dbg, _sr, _vdi, Param("vdi2", vdi, "The other VDI")),
               Param("changed_blocks", STRING, "The base64-encoded bitmap"),
               ("Sr_not_attached", "Vdi_does_not_exist", "Backend_error")),
    ),
)

SR = Interface(
    "SR",
    "Operations which act on Storage Repositories",
    (
        Method("ls", "[ls dbg]: returns a list of attached SRs", (_dbg,),
               Param("srs", ListOf(STRING), "The attached SRs")),
        Method("create", "[create task sr device_config physical_size]: creates a fresh SR",
               (_dbg, _sr, _device_config,
                Param("physical_size", INT64, "Requested maximum size of the SR (bytes)")), None,
               ("Backend_error",)),
        Method("attach", "[attach task sr]: attaches the SR", (_dbg, _sr, _device_config), None,
               ("Backend_error",)),
        Method("detach",
               "[detach task sr]: detaches the SR, first detaching and/or deactivating any active VDIs. This may "
               "fail with Sr_not_attached, or any error from VDI.detach or VDI.deactivate.",
               (_dbg, _sr), None, ("Sr_not_attached",)),
        Method("destroy",
               "[destroy sr]: destroys (i.e. makes unattachable and unprobeable) the [sr], first detaching and/or "
               "deactivating any active VDIs. This may fail with Sr_not_attached, or any error from VDI.detach or "
               "VDI.deactivate.",
               (_dbg, _sr), None, ("Sr_not_attached",)),
        Method("reset",
               "[reset task sr]: declares that the SR has been completely reset, e.g. by rebooting the VM hosting "
               "the SR backend.",
               (_dbg, _sr), None),
        Method("scan", "[scan task sr] returns a list of VDIs contained within an attached SR", (_dbg, _sr),
               Param("vdis", ListOf(vdi_info), "List of all the visible VDIs in the SR"), ("Sr_not_attached",)),
        Method("set_name_label", "Extension: [set_name_label task sr new_name_label] renames the SR",
               (_dbg, _sr, Param("new_name_label", STRING, "The new name")), None, ("Sr_not_attached",)),
        Method("set_name_description",
               "Extension: [set_name_description task sr new_name_description] changes the SR's description",
               (_dbg, _sr, Param("new_name_description", STRING, "The new description")), None,
               ("Sr_not_attached",)),
        Method("stat", "Extension: [stat task sr] returns the size, free space and health of an attached SR",
               (_dbg, _sr), Param("sr_info", sr_info, "The SR's state"), ("Sr_not_attached",)),
        Method("probe",
               "Extension: [probe task device_config sm_config] looks at the storage [device_config] reaches and "
               "reports what could be attached there",
               (_dbg, _device_config,
                Param("sm_config", STRING_MAP, "Driver-specific probe options", default={})),
               Param("result", probe_result, "What was found"), ("Backend_error",)),
    ),
)

STORAGE = Api(
    name="storage",
    title="The storage interface (SMAPIv2)",
    description=(
        "The Storage Manager API as the toolstack calls it: Query, VDI and SR verbs, one named-argument struct "
        "per call, served over XML-RPC and JSON-RPC."
    ),
    version="2.0",
    interfaces=(Query, VDI, SR),
    errors=STORAGE_ERRORS + FRAMEWORK_ERRORS,
    source="shared/seeds/001 (storage interface); extensions from storage_interface.ml",
)
