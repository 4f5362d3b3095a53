"""Compatibility: the driver registry moved to `smapi.core.driver`.

Vendors' drivers written as `from smapi.driver import Driver` (or `load_driver`) keep working; smapi's own code
imports `smapi.core.driver`.
"""

from __future__ import annotations

from smapi.core.driver import (
    ENTRY_POINT_GROUP,
    Driver,
    DriverNotFound,
    ImplementationRef,
    driver_entry_points,
    driver_reference,
    load_driver,
    optional_attr,
    resolve_driver_class,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Driver",
    "DriverNotFound",
    "ImplementationRef",
    "driver_entry_points",
    "driver_reference",
    "load_driver",
    "optional_attr",
    "resolve_driver_class",
]
