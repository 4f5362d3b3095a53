"""Bindings for the Plugin interface (xen-api's `xapi.storage.api.v5.plugin`)."""

from xapi.storage.api.v5._bindings import build

_DBG = ("dbg",)
TABLE = (
    ("Plugin", (("query", _DBG), ("ls", _DBG), ("diagnostics", _DBG))),
)

build(globals(), "plugin", TABLE, errors=())
