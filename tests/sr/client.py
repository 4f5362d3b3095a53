"""The SR client the driver test suites share: one SR of one driver, driven through the dispatcher as every
transport drives it, with data through the driver's open_vdi."""

from __future__ import annotations

import uuid
from typing import Any, Dict

from smapi.core.driver import load_driver


class DriverClient:
    def __init__(self, driver: str, device_config: Dict[str, str], sr: str = "") -> None:
        self.device_config = dict(device_config)
        self.sr = sr or str(uuid.uuid4())
        self.driver = load_driver(driver)
        self.dispatcher = self.driver.dispatcher("storage")
        self._dbg = f"tests/{driver}"

    def call(self, verb: str, **args: Any) -> Any:
        args.setdefault("dbg", f"{self._dbg}:{verb}")
        return self.dispatcher.call(verb, args)

    def v(self, verb: str, **args: Any) -> Any:
        """A call on this SR."""
        return self.call(verb, sr=self.sr, **args)

    def create(self, physical_size: int = 0) -> None:
        self.call("SR.create", sr=self.sr, device_config=self.device_config, physical_size=physical_size)

    def attach(self) -> None:
        self.call("SR.attach", sr=self.sr, device_config=self.device_config)

    def detach(self) -> None:
        self.v("SR.detach")

    def write(self, vdi: str, offset: int, data: bytes) -> None:
        with self.driver.open_vdi(self.sr, vdi, writable=True) as h:
            h.write(offset, data)
            h.flush()

    def read(self, vdi: str, offset: int, length: int) -> bytes:
        with self.driver.open_vdi(self.sr, vdi) as h:
            return bytes(h.read(offset, length))
