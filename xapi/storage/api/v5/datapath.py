"""Bindings for the Datapath and Data interfaces (xen-api's `xapi.storage.api.v5.datapath`)."""

from xapi.storage.api.v5._bindings import build

_URI_DOMAIN = ("dbg", "uri", "domain")
_OPERATION = ("dbg", "operation")
TABLE = (
    ("Datapath", (
        ("open", ("dbg", "uri", "persistent")),
        ("attach", _URI_DOMAIN),
        ("activate", _URI_DOMAIN),
        ("activate_readonly", _URI_DOMAIN),
        ("import_activate", _URI_DOMAIN),
        ("deactivate", _URI_DOMAIN),
        ("detach", _URI_DOMAIN),
        ("close", ("dbg", "uri")),
    )),
    ("Data", (
        ("copy", (*_URI_DOMAIN, "remote", "blocklist")),
        ("mirror", (*_URI_DOMAIN, "remote")),
        ("stat", _OPERATION),
        ("cancel", _OPERATION),
        ("destroy", _OPERATION),
        ("ls", ("dbg",)),
    )),
)

build(globals(), "datapath", TABLE, errors=())
