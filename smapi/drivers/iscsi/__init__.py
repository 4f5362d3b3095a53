"""The iSCSI SR: the LVM SR on an iSCSI LUN, reached through the kernel initiator or a userspace one."""

from typing import Any

__all__ = ["IscsiDriver"]


def __getattr__(name: str) -> Any:
    # Lazy: `Plugin.Query` of a per-verb executable should not pay for the LVM driver and the SR engine.
    if name == "IscsiDriver":
        from smapi.drivers.iscsi.driver import IscsiDriver

        return IscsiDriver
    raise AttributeError(name)
