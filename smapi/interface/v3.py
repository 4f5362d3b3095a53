"""SMAPIv3 (xapi-storage): the Plugin, SR, Volume, Datapath and Data interfaces of volume and datapath plugins.

Served as per-verb executables (`SR.create --json`, one JSON line of named arguments on stdin), the way
xapi-storage-script calls plugins; also over XML-RPC / JSON-RPC when asked.
"""

from __future__ import annotations

from smapi.interface.errors import FRAMEWORK_ERRORS, V3_ERRORS
from smapi.interface.model import Api, Interface, Method, Param
from smapi.interface.plugin import Plugin, debug_info
from smapi.interface.types import (
    BOOL,
    FLOAT,
    INT64,
    STRING,
    STRING_MAP,
    Alias,
    Case,
    Field,
    ListOf,
    Optional_,
    Record,
    Tuple_,
    Variant,
)

configuration = Alias("configuration", STRING_MAP, "Plugin-specific configuration, e.g. a device_config")
sr_ref = Alias("sr", STRING, "The opaque SR reference returned by SR.attach (typically a URI)")
key = Alias("key", STRING, "Primary key of a volume within its SR")

health = Variant(
    "health",
    (
        Case("Healthy", STRING, "The SR is fine"),
        Case("Recovering", STRING, "The SR is recovering; the payload says from what"),
        Case("Unreachable", STRING, "The SR's storage cannot be reached"),
        Case("Unavailable", STRING, "The SR is not available"),
    ),
    "The health of an SR, with a message",
)

sr_stat = Record(
    "sr_stat",
    (
        Field("sr", sr_ref, "The SR reference"),
        Field("name", STRING, "Short name"),
        Field("uuid", Optional_(STRING), "The SR's uuid, if it has one"),
        Field("description", STRING, "Longer description"),
        Field("free_space", INT64, "Free space (bytes)"),
        Field("total_space", INT64, "Total space (bytes)"),
        Field("datasources", ListOf(STRING), "URIs of data sources for xcp-rrdd", default_factory=list),
        Field("clustered", BOOL, "Whether the SR uses a cluster stack", default=False),
        Field("health", health, "The SR's health", default_factory=lambda: ["Healthy", ""]),
    ),
    "The state of an SR",
)

probe_result = Record(
    "probe_result",
    (
        Field("configuration", configuration, "A configuration that reaches what was found"),
        Field("complete", BOOL, "True when the configuration is enough to attach an SR"),
        Field("sr", Optional_(sr_stat), "The SR found there, if any"),
        Field("extra_info", STRING_MAP, "Plugin-specific details", default_factory=dict),
    ),
    "One result of SR.probe",
)

volume = Record(
    "volume",
    (
        Field("key", key, "Primary key of the volume"),
        Field("uuid", Optional_(STRING), "The volume's uuid, if it has one"),
        Field("name", STRING, "Short name"),
        Field("description", STRING, "Longer description"),
        Field("read_write", BOOL, "False when the volume is read-only"),
        Field("sharable", BOOL, "True when the volume may be attached by several hosts at once", default=False),
        Field("virtual_size", INT64, "Size seen by a VM (bytes)"),
        Field("physical_utilisation", INT64, "Space consumed on the storage (bytes)"),
        Field("uri", ListOf(STRING), "URIs a datapath plugin can open, most preferred first"),
        Field("keys", STRING_MAP, "Opaque key/value metadata kept for the toolstack", default_factory=dict),
        Field("cbt_enabled", Optional_(BOOL), "Whether changed-block tracking is on"),
    ),
    "A volume in an SR",
)

blocklist = Record(
    "blocklist",
    (
        Field("blocksize", INT64, "Size of a block (bytes)"),
        Field("ranges", ListOf(Tuple_((INT64, INT64))), "(start block, count) pairs that differ"),
    ),
    "Blocks that differ between two volumes",
)

changed_blocks = Record(
    "changed_blocks",
    (
        Field("granularity", INT64, "Bytes per bit of the bitmap"),
        Field("bitmap", STRING, "The changed-block bitmap, base64 encoded"),
    ),
    "Changed-block tracking result",
)

xendisk = Record(
    "xendisk",
    (
        Field("params", STRING, "The xenstore backend params key"),
        Field("extra", STRING_MAP, "Extra xenstore backend keys", default_factory=dict),
        Field("backend_type", STRING, "The backend type, e.g. vbd3 or qdisk"),
    ),
    "A disk for a Xen backend",
)
block_device = Record("block_device", (Field("path", STRING, "Path of a block device"),), "A block device")
file_ = Record("file", (Field("path", STRING, "Path of a regular file holding the raw disk"),), "A raw file")
nbd = Record("nbd", (Field("uri", STRING, "nbd:unix:<socket>:exportname=<name>"),), "An NBD export")

implementation = Variant(
    "implementation",
    (
        Case("XenDisk", xendisk, "Use a Xen disk backend"),
        Case("BlockDevice", block_device, "Open this block device"),
        Case("File", file_, "Open this file"),
        Case("Nbd", nbd, "Connect to this NBD export"),
    ),
    "One way of reaching an attached disk",
)

backend = Record(
    "backend",
    (Field("implementations", ListOf(implementation), "Ways to reach the disk, most preferred first"),),
    "What Datapath.attach returns",
)

_dbg = Param("dbg", debug_info, "Debug context from the caller")
_sr = Param("sr", sr_ref, "The SR reference")
_key = Param("key", key, "The volume key")
_uri = Param("uri", STRING, "A volume URI")
_domain = Param("domain", STRING, "The domain (VM) that will use the disk")

# the errors each verb documents (every verb may also fail with Unimplemented and the framework's errors)
_ON_SR = ("Sr_not_attached",)
_ON_VOLUME = ("Sr_not_attached", "Volume_does_not_exist")
_ON_DATAPATH = ("Volume_does_not_exist",)
_ON_ACTIVATE = ("Volume_does_not_exist", "Activated_on_another_host")

SR = Interface(
    "SR",
    "Operations on storage repositories",
    (
        Method("probe", "[probe dbg configuration] looks at the storage the configuration reaches and reports what "
               "SRs and further configurations exist there",
               (_dbg, Param("configuration", configuration, "The configuration to look at")),
               Param("result", ListOf(probe_result), "What was found")),
        Method("create", "[create dbg uuid configuration name description] creates a new SR and returns the "
               "configuration to store for attaching it",
               (_dbg, Param("uuid", STRING, "The uuid of the new SR"),
                Param("configuration", configuration, "Where to create the SR"),
                Param("name", STRING, "Short name"), Param("description", STRING, "Longer description")),
               Param("configuration", configuration, "The configuration to attach the SR with")),
        Method("attach", "[attach dbg configuration] attaches the SR and returns its reference",
               (_dbg, Param("configuration", configuration, "The SR's configuration")),
               Param("sr", sr_ref, "The SR reference")),
        Method("detach", "[detach dbg sr] detaches the SR; idempotent", (_dbg, _sr), errors=_ON_SR),
        Method("destroy", "[destroy dbg sr] destroys an attached SR and everything in it", (_dbg, _sr), errors=_ON_SR),
        Method("stat", "[stat dbg sr] returns the SR's size, free space and health", (_dbg, _sr),
               Param("sr_stat", sr_stat, "The SR's state"), errors=_ON_SR),
        Method("set_name", "[set_name dbg sr new_name] renames the SR",
               (_dbg, _sr, Param("new_name", STRING, "The new name")), errors=_ON_SR),
        Method("set_description", "[set_description dbg sr new_description] changes the SR's description",
               (_dbg, _sr, Param("new_description", STRING, "The new description")), errors=_ON_SR),
        Method("ls", "[ls dbg sr] lists the volumes of the SR", (_dbg, _sr),
               Param("volumes", ListOf(volume), "The volumes"), errors=_ON_SR),
    ),
)

Volume = Interface(
    "Volume",
    "Operations on volumes",
    (
        Method("create", "[create dbg sr name description size sharable] creates a volume of at least [size] bytes",
               (_dbg, _sr, Param("name", STRING, "Short name"), Param("description", STRING, "Longer description"),
                Param("size", INT64, "Requested virtual size (bytes)"),
                Param("sharable", BOOL, "Whether several hosts may attach it at once", default=False)),
               Param("volume", volume, "The new volume"), errors=_ON_SR),
        Method("snapshot", "[snapshot dbg sr key] creates a read-only snapshot of the volume",
               (_dbg, _sr, _key), Param("volume", volume, "The snapshot"), errors=_ON_VOLUME),
        Method("clone", "[clone dbg sr key] creates a writable clone of the volume",
               (_dbg, _sr, _key), Param("volume", volume, "The clone"), errors=_ON_VOLUME),
        Method("copy", "[copy dbg sr key dest_sr] copies the volume into another attached SR (VDI_COPY feature)",
               (_dbg, _sr, _key, Param("dest_sr", sr_ref, "The destination SR")),
               Param("volume", volume, "The copy"), errors=_ON_VOLUME),
        Method("destroy", "[destroy dbg sr key] removes the volume", (_dbg, _sr, _key), errors=_ON_VOLUME),
        Method("set_name", "[set_name dbg sr key new_name] renames the volume",
               (_dbg, _sr, _key, Param("new_name", STRING, "The new name")), errors=_ON_VOLUME),
        Method("set_description", "[set_description dbg sr key new_description] changes the description",
               (_dbg, _sr, _key, Param("new_description", STRING, "The new description")), errors=_ON_VOLUME),
        Method("set", "[set dbg sr key k v] stores a key/value pair with the volume",
               (_dbg, _sr, _key, Param("k", STRING, "The key"), Param("v", STRING, "The value")), errors=_ON_VOLUME),
        Method("unset", "[unset dbg sr key k] removes a key from the volume's metadata",
               (_dbg, _sr, _key, Param("k", STRING, "The key")), errors=_ON_VOLUME),
        Method("resize", "[resize dbg sr key new_size] grows the volume to at least [new_size] bytes",
               (_dbg, _sr, _key, Param("new_size", INT64, "The new virtual size (bytes)")), errors=_ON_VOLUME),
        Method("stat", "[stat dbg sr key] returns the volume's metadata", (_dbg, _sr, _key),
               Param("volume", volume, "The volume"), errors=_ON_VOLUME),
        Method("compare", "[compare dbg sr key key2] lists the blocks that differ between two volumes",
               (_dbg, _sr, _key, Param("key2", key, "The other volume")),
               Param("blocklist", blocklist, "The differing blocks"), errors=_ON_VOLUME),
        Method("similar_content", "[similar_content dbg sr key] lists volumes with similar content, most similar "
               "first", (_dbg, _sr, _key), Param("keys", ListOf(key), "Volume keys"), errors=_ON_VOLUME),
        Method("enable_cbt", "[enable_cbt dbg sr key] turns on changed-block tracking", (_dbg, _sr, _key),
               errors=_ON_VOLUME),
        Method("disable_cbt", "[disable_cbt dbg sr key] turns off changed-block tracking", (_dbg, _sr, _key),
               errors=_ON_VOLUME),
        Method("data_destroy", "[data_destroy dbg sr key] deletes the data, keeping the CBT metadata",
               (_dbg, _sr, _key), errors=_ON_VOLUME),
        Method("list_changed_blocks", "[list_changed_blocks dbg sr key key2 offset length] lists blocks changed "
               "between two snapshots",
               (_dbg, _sr, _key, Param("key2", key, "The later volume"), Param("offset", INT64, "Start (bytes)"),
                Param("length", INT64, "Length (bytes)")),
               Param("changed_blocks", changed_blocks, "The changed blocks"), errors=_ON_VOLUME),
        Method("compose", "[compose dbg sr key key2] layers the updates of the child volume [key] onto the parent "
               "volume [key2], modifying [key] only (VDI_COMPOSE feature)",
               (_dbg, _sr, _key, Param("key2", key, "The parent volume")), errors=_ON_VOLUME),
        Method("revert", "[revert dbg sr snapshot key] makes volume [key] hold the contents of the read-only "
               "[snapshot]; the volume keeps its identity",
               (_dbg, _sr, Param("snapshot", key, "The snapshot whose contents the volume takes"), _key),
               errors=_ON_VOLUME),
    ),
)

Datapath = Interface(
    "Datapath",
    "Making volumes usable by a consumer: open, attach, activate, deactivate, detach, close; all idempotent",
    (
        Method("open", "[open dbg uri persistent] prepares the volume; non-persistent volumes are reset on close",
               (_dbg, _uri, Param("persistent", BOOL, "False for a disk whose writes are discarded")),
               errors=_ON_DATAPATH),
        Method("attach", "[attach dbg uri domain] makes the disk reachable and says how", (_dbg, _uri, _domain),
               Param("backend", backend, "How to reach the disk"), errors=_ON_DATAPATH),
        Method("activate", "[activate dbg uri domain] allows I/O to start", (_dbg, _uri, _domain), errors=_ON_ACTIVATE),
        Method("activate_readonly", "[activate_readonly dbg uri domain] allows read-only I/O (ATTACH_READONLY)",
               (_dbg, _uri, _domain), errors=_ON_ACTIVATE),
        Method("import_activate", "[import_activate dbg uri domain] returns the path of a Unix socket; a file "
               "descriptor passed to it (SCM_RIGHTS) becomes the server end of an NBD connection to the active "
               "volume, for inbound import mirroring (VDI_MIRROR_IN feature)", (_dbg, _uri, _domain),
               Param("sock_path", STRING, "A path to a Unix domain socket"), errors=_ON_ACTIVATE),
        Method("deactivate", "[deactivate dbg uri domain] stops I/O and flushes", (_dbg, _uri, _domain),
               errors=_ON_DATAPATH),
        Method("detach", "[detach dbg uri domain] releases what attach made; should never fail",
               (_dbg, _uri, _domain), errors=_ON_DATAPATH),
        Method("close", "[close dbg uri] ends the use of the volume", (_dbg, _uri), errors=_ON_DATAPATH),
    ),
)

operation = Variant(
    "operation",
    (
        Case("CopyV1", STRING, "An ongoing copy, by key"),
        Case("MirrorV1", STRING, "An ongoing mirror, by key"),
    ),
    "A long-running Data operation",
)

status = Record(
    "status",
    (
        Field("failed", BOOL, "True if the operation failed"),
        Field("complete", BOOL, "True once the operation has ended, successfully or not"),
        Field("progress", Optional_(FLOAT), "For a copy: the fraction done, 0 to 1"),
    ),
    "The state of a Data operation",
)

_operation = Param("operation", operation, "The operation")
_remote = Param("remote", STRING, "A URI of the remote disk, e.g. nbd://host/export or nbd+unix:///export?socket=S")

Data = Interface(
    "Data",
    "Long-running data operations on volumes: copies to and mirrors onto remote disks",
    (
        Method("copy", "[copy dbg uri domain remote blocklist] copies [blocklist] of the local volume to [remote] "
               "in the background", (_dbg, _uri, _domain, _remote, Param("blocklist", blocklist, "What to copy")),
               _operation),
        Method("mirror", "[mirror dbg uri domain remote] starts mirroring the writes to the active volume onto "
               "[remote]", (_dbg, _uri, _domain, _remote), _operation),
        Method("stat", "[stat dbg operation] says how an operation is going", (_dbg, _operation),
               Param("status", status, "The operation's state")),
        Method("cancel", "[cancel dbg operation] stops an operation", (_dbg, _operation)),
        Method("destroy", "[destroy dbg operation] forgets an ended (or cancelled) operation", (_dbg, _operation)),
        Method("ls", "[ls dbg] lists the operations this host knows", (_dbg,),
               Param("operations", ListOf(operation), "The operations")),
    ),
)

V3 = Api(
    name="v3",
    title="SMAPIv3 plugins (xapi-storage)",
    description=(
        "Volume and datapath plugins as xapi-storage-script runs them: one executable per verb named "
        "`Interface.verb`, `--json` with one line of named arguments on stdin."
    ),
    version="5.0",
    interfaces=(Plugin, SR, Volume, Datapath, Data),
    errors=V3_ERRORS + FRAMEWORK_ERRORS,
    source="shared/seeds/004 (Plugin); shared/reference/smapi-wire-formats.md section 3.2",
)
