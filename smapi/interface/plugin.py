"""The plugin interface (seed 004): what every SMAPIv3 plugin answers so that xapi recognises it."""

from __future__ import annotations

from smapi.interface.model import Interface, Method, Param
from smapi.interface.types import STRING, STRING_MAP, Alias, Field, ListOf, Record

debug_info = Alias("debug_info", STRING, "Debug context from the caller")

query_result = Record(
    "plugin_query_result",
    (
        Field("plugin", STRING, "plugin name, used in the XenAPI as SR.type"),
        Field("name", STRING, "short name"),
        Field("description", STRING, "description"),
        Field("vendor", STRING, "entity (e.g. company, project, group) which produced this implementation"),
        Field("copyright", STRING, "copyright"),
        Field("version", STRING, "version"),
        Field("required_api_version", STRING, "minimum required API version"),
        Field("features", ListOf(STRING), "features supported by this plugin"),
        Field("configuration", STRING_MAP, "key/description pairs describing required device_config parameters"),
        Field("required_cluster_stack", ListOf(STRING),
              "the plugin requires one of these cluster stacks to be active", default_factory=list),
    ),
    "properties of this implementation",
)

_dbg = Param("dbg", debug_info, "Debug context from the caller")

Plugin = Interface(
    "Plugin",
    "Discover properties of this implementation. Every implementation must support the query interface or it "
    "will not be recognised as a storage plugin by xapi.",
    (
        Method("query",
               "Query this implementation and return its properties. This is called by xapi to determine whether "
               "it is compatible with xapi and to discover the supported features.",
               (_dbg,), Param("query_result", query_result, "The properies of this implementation")),
        Method("ls", "[ls dbg]: returns a list of attached SRs", (_dbg,),
               Param("srs", ListOf(STRING), "The attached SRs")),
        Method("diagnostics",
               "Returns a printable set of backend diagnostic information. Implementations are encouraged to "
               "include any data which will be useful to diagnose problems. Note this data should not include "
               "personally-identifiable data as it is intended to be automatically included in bug reports.",
               (_dbg,),
               Param("diagnostics", STRING, "A string containing loggable human-readable diagnostics information")),
    ),
)
