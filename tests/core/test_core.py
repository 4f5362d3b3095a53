"""smapi.core: the one way to call a driver, the public names vendors use, and what the core may import."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import smapi
from smapi.core.driver import Driver, load_driver
from smapi.interface.errors import Sr_not_attached, Unimplemented
from smapi.interface.skeletons.storage import Query_skeleton, SR_skeleton
from tests.conftest import EXAMPLE_DRIVER

PACKAGE = Path(smapi.__file__).resolve().parent


class EchoSR(SR_skeleton):
    def ls(self, dbg: str) -> list:
        return [dbg]

    def stat(self, dbg: str, sr: str) -> dict:
        raise Sr_not_attached(sr)


class EchoDriver(Driver):
    name = "echo"
    storage = {"SR": EchoSR, "Query": Query_skeleton}


def test_vendors_old_import_paths_still_work():
    import smapi.driver as old

    assert smapi.Driver is Driver is old.Driver
    assert old.load_driver is load_driver
    assert type(load_driver(EXAMPLE_DRIVER)).__name__ == "DirSR"


def test_one_dispatcher_per_api_and_driver():
    driver = EchoDriver()
    assert driver.dispatcher("storage") is driver.dispatcher("storage")
    assert driver.dispatcher("storage").api.name != driver.dispatcher("v3").api.name
    assert EchoDriver().dispatcher("storage") is not driver.dispatcher("storage")


def test_call_checks_and_raises_typed_errors():
    driver = EchoDriver()
    assert driver.call("storage", "SR.ls", dbg="d") == ["d"]
    with pytest.raises(Sr_not_attached):
        driver.call("storage", "SR.stat", dbg="d", sr="s")
    with pytest.raises(Unimplemented):
        driver.call("storage", "VDI.stat", dbg="d", sr="s", vdi="v")
    with pytest.raises(Unimplemented):
        driver.call("transfer", "Transfer.get_status", dbg="d")  # a driver without that API


def test_argument_names_never_collide_with_calls_own():
    # `api` and `verb` are positional-only: a caller's argument of that name is just an argument of the verb
    assert EchoDriver().call("storage", "SR.ls", dbg="d", api="x", verb="y") == ["d"]


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    """Every module a file imports, at any depth (function-level imports included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_the_core_stands_on_the_layers_below_it_only():
    # common < interface < vhd < datapath < core (docs/architecture.md); the Data interface serves and copies
    # volumes over NBD, so it uses the datapath. Never the engine, the drivers or the transports.
    allowed = ("smapi.common", "smapi.interface", "smapi.vhd", "smapi.datapath", "smapi.core")
    bad = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p in sorted((PACKAGE / "core").rglob("*.py"))
           for line, name in _imports(p) if name.startswith("smapi.") and not name.startswith(allowed)]
    assert bad == []


def test_rpc_keeps_only_transports_and_nothing_below_reaches_up_to_it():
    assert not (PACKAGE / "rpc" / "dispatcher.py").exists() and not (PACKAGE / "rpc" / "v3_adapter.py").exists()
    below_rpc = ("common", "interface", "vhd", "datapath", "core", "sr", "drivers")
    bad = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for layer in below_rpc
           for p in sorted((PACKAGE / layer).rglob("*.py")) for line, name in _imports(p)
           if name == "smapi.rpc" or name.startswith("smapi.rpc.")]
    assert bad == []
