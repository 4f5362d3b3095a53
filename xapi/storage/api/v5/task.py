"""Bindings for the Task interface (xen-api's `xapi.storage.api.v5.task`)."""

from xapi.storage.api.v5._bindings import build

_ID = ("dbg", "id")
TABLE = (
    ("Task", (("stat", _ID), ("cancel", _ID), ("destroy", _ID), ("ls", ("dbg",)))),
)

build(globals(), "task", TABLE, errors=())
