"""The Transfer service as a driver: `smapi serve --driver smapi.transfer.driver:TransferDriver --api transfer`.

It serves the Transfer API only; the VDIs it exposes belong to whichever SRs are attached on this host, each
reached through the driver that attached it (`smapi.transfer.locate`).
"""

from __future__ import annotations

from smapi.core.driver import Driver


class TransferDriver(Driver):
    name = "transfer"
    transfer = {"Transfer": "smapi.transfer.service:TransferService"}
