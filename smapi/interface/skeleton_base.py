"""The common base of every generated skeleton."""

from __future__ import annotations

from typing import Any, ClassVar


class Skeleton:
    """A driver's implementation of one interface.

    `driver` is the object that groups a driver's implementations (see `smapi.core.driver.Driver`); it lets the
    SR and VDI implementations share state. Skeletons work without one too, as in the generated bindings.
    """

    interface_name: ClassVar[str] = ""

    def __init__(self, driver: Any = None) -> None:
        self.driver = driver
