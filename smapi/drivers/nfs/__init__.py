"""The NFS SR: the SR engine on a directory of an NFS export, shared by every host that attaches it."""

from typing import Any

__all__ = ["NfsDriver"]


def __getattr__(name: str) -> Any:
    # Lazy: the FUSE daemon (`python -m smapi.drivers.nfs.fusefs`) must not pay for importing the SR engine.
    if name == "NfsDriver":
        from smapi.drivers.nfs.driver import NfsDriver

        return NfsDriver
    raise AttributeError(name)
