"""Bindings for the SR and Volume interfaces (xen-api's `xapi.storage.api.v5.volume`)."""

from xapi.storage.api.v5._bindings import build

_KEY = ("dbg", "sr", "key")
TABLE = (
    ("SR", (
        ("probe", ("dbg", "configuration")),
        ("create", ("dbg", "uuid", "configuration", "name", "description")),
        ("attach", ("dbg", "configuration")),
        ("detach", ("dbg", "sr")),
        ("destroy", ("dbg", "sr")),
        ("stat", ("dbg", "sr")),
        ("set_name", ("dbg", "sr", "new_name")),
        ("set_description", ("dbg", "sr", "new_description")),
        ("ls", ("dbg", "sr")),
    )),
    ("Volume", (
        ("create", ("dbg", "sr", "name", "description", "size", "sharable")),
        ("snapshot", _KEY),
        ("clone", _KEY),
        ("copy", (*_KEY, "dest_sr")),
        ("destroy", _KEY),
        ("revert", ("dbg", "sr", "snapshot", "key")),
        ("set_name", (*_KEY, "new_name")),
        ("set_description", (*_KEY, "new_description")),
        ("set", (*_KEY, "k", "v")),
        ("unset", (*_KEY, "k")),
        ("resize", (*_KEY, "new_size")),
        ("stat", _KEY),
        ("compare", (*_KEY, "key2")),
        ("similar_content", _KEY),
        ("enable_cbt", _KEY),
        ("disable_cbt", _KEY),
        ("data_destroy", _KEY),
        ("list_changed_blocks", (*_KEY, "key2", "offset", "length")),
        ("compose", (*_KEY, "key2")),
    )),
)

build(globals(), "volume", TABLE, errors=("Sr_not_attached", "SR_does_not_exist", "Volume_does_not_exist",
                                          "Cancelled", "Activated_on_another_host"))
