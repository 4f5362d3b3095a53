"""Fixtures of the hostile-input suite: an attached file SR with one VDI, inside an arena with a canary."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from smapi.core.dispatcher import Dispatcher
from smapi.core.driver import load_driver
from tests.hostile.arena import Arena, make_arena

SR = "0f5e5e6c-5a8e-4d0a-9f43-1c2d3e4f5a6b"
MiB = 1 << 20


class Attached:
    def __init__(self, arena: Arena, dispatcher: Dispatcher, vdi: str) -> None:
        self.arena = arena
        self.dispatcher = dispatcher
        self.sr = SR
        self.vdi = vdi
        self.device_config = {"path": str(arena.sr_path)}

    def call(self, method: str, **args: Any) -> Any:
        return self.dispatcher.call(method, {"dbg": "hostile", **args})


@pytest.fixture
def attached(tmp_path, monkeypatch) -> Iterator[Attached]:
    arena = make_arena(tmp_path)
    monkeypatch.setenv("SMAPI_RUN_DIR", str(arena.run_dir))
    monkeypatch.setenv("SMAPI_GC", "off")
    dispatcher = load_driver("file").dispatcher("storage")
    config = {"path": str(arena.sr_path)}
    dispatcher.call("SR.create", {"dbg": "t", "sr": SR, "device_config": config, "physical_size": 0})
    dispatcher.call("SR.attach", {"dbg": "t", "sr": SR, "device_config": config})
    vdi = dispatcher.call("VDI.create", {"dbg": "t", "sr": SR,
                                         "vdi_info": {"virtual_size": MiB, "name_label": "known"}})["vdi"]
    yield Attached(arena, dispatcher, vdi)
