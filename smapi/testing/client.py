"""Driving one SR of the driver under test, through the dispatcher exactly as every transport drives it.

Usable without pytest fixtures (worker processes, hypothesis examples, a vendor's own tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from smapi.core.driver import Driver, load_driver
from smapi.testing.sut import Factory, SRUnderTest

if TYPE_CHECKING:
    import pytest

MiB = 1 << 20
#: the interface's own default for snapshot_time: a snapshot must carry a real time instead
EPOCH = "19700101T00:00:00Z"
#: the driver-level hooks the suite (and the CLI's vdi-import/export, sr-gc) use beyond the interface
HOOKS = ("open_vdi", "gc")


def pattern(seed: Any, length: int) -> bytes:
    """Deterministic, incompressible bytes: two different seeds never read alike by accident."""
    return random.Random(repr(seed)).randbytes(length)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lookup_hook(driver: Driver, name: str) -> Optional[Callable[..., Any]]:
    """A driver-level hook (`open_vdi`, `gc`) from the driver, its engine, or its implementation objects."""
    places: List[Any] = [driver, getattr(driver, "engine", None)]
    for impl in driver.implementations("storage").values():
        places += [impl, getattr(impl, "engine", None)]
    for place in places:
        fn = getattr(place, name, None)
        # Driver declares both hooks with defaults that raise Unimplemented: those are no hook
        if isinstance(place, Driver) and getattr(type(place), name, None) is getattr(Driver, name, None):
            continue
        if callable(fn):
            return fn
    return None


class MissingHook(LookupError):
    pass


def find_hook(driver: Driver, name: str) -> Callable[..., Any]:
    fn = lookup_hook(driver, name)
    if fn is None:
        raise MissingHook(f"driver {type(driver).__module__}.{type(driver).__qualname__} offers no {name}(); the "
                          f"conformance suite needs it on the driver, driver.engine or an implementation object")
    return fn


def new_sr_uuid() -> str:
    return str(uuid.uuid4())


class SRClient:
    """One SR of the driver under test."""

    def __init__(self, sut: SRUnderTest, sr: str, device_config: Optional[Dict[str, str]] = None):
        self.sut = sut
        self.sr = sr
        self.device_config = dict(device_config if device_config is not None else sut.device_config)
        self.reload()

    def reload(self) -> None:
        """A fresh driver instance, as a new per-verb process would have: nothing cached in memory survives."""
        self.driver = load_driver(self.sut.driver_spec)
        self.dispatcher = self.driver.dispatcher("storage")

    # -- verbs ---------------------------------------------------------------------------------------------
    def call(self, verb: str, **args: Any) -> Any:
        args.setdefault("dbg", f"conformance:{verb}")
        return self.dispatcher.call(verb, args)

    def v(self, verb: str, **args: Any) -> Any:
        """A verb on this SR (`sr` filled in)."""
        return self.call(verb, sr=self.sr, **args)

    def create_sr(self, physical_size: int = 0) -> None:
        self.call("SR.create", sr=self.sr, device_config=self.device_config, physical_size=physical_size)

    def attach(self) -> None:
        self.call("SR.attach", sr=self.sr, device_config=self.device_config)

    def detach(self) -> None:
        self.call("SR.detach", sr=self.sr)

    def create(self, size: int = 2 * MiB, **fields: Any) -> Dict[str, Any]:
        return self.v("VDI.create", vdi_info={"virtual_size": size, **fields})

    def stat(self, vdi: str) -> Dict[str, Any]:
        return self.v("VDI.stat", vdi=vdi)

    def scan(self) -> Dict[str, Dict[str, Any]]:
        return {info["vdi"]: info for info in self.v("SR.scan")}

    def snapshot(self, vdi: str, **fields: Any) -> Dict[str, Any]:
        # Callers (xapi) pass the VDI's current record; the driver decides what the new one looks like.
        return self.v("VDI.snapshot", vdi_info={**self.stat(vdi), **fields})

    def clone(self, vdi: str, **fields: Any) -> Dict[str, Any]:
        return self.v("VDI.clone", vdi_info={**self.stat(vdi), **fields})

    def destroy(self, vdi: str) -> None:
        self.v("VDI.destroy", vdi=vdi)

    def resize(self, vdi: str, new_size: int) -> int:
        return self.v("VDI.resize", vdi=vdi, new_size=new_size)

    # -- data ----------------------------------------------------------------------------------------------
    def open(self, vdi: str, writable: bool = False) -> Any:
        return find_hook(self.driver, "open_vdi")(self.sr, vdi, writable=writable)

    def write(self, vdi: str, offset: int, data: bytes) -> None:
        h = self.open(vdi, writable=True)
        try:
            h.write(offset, data)
            h.flush()
        finally:
            h.close()

    def read(self, vdi: str, offset: int, length: int) -> bytes:
        h = self.open(vdi)
        try:
            return bytes(h.read(offset, length))
        finally:
            h.close()

    def read_all(self, vdi: str) -> bytes:
        h = self.open(vdi)
        try:
            size = h.size
            chunks = [bytes(h.read(off, min(4 * MiB, size - off))) for off in range(0, size, 4 * MiB)]
        finally:
            h.close()
        data = b"".join(chunks)
        assert len(data) == size, f"short read of {vdi}: {len(data)} of {size} bytes"
        return data

    def digest(self, vdi: str) -> str:
        return sha(self.read_all(vdi))

    def digests(self) -> Dict[str, str]:
        """sha256 of every visible VDI's full contents, by vdi."""
        return {vdi: self.digest(vdi) for vdi in self.scan()}

    def gc(self) -> None:
        find_hook(self.driver, "gc")(self.sr)


@contextlib.contextmanager
def provisioned(factory: Factory, root: Path, mp: pytest.MonkeyPatch) -> Iterator[SRClient]:
    """A created and attached SR in `root` with the factory's environment; detached and cleaned up after."""
    root.mkdir(parents=True, exist_ok=True)
    sut = factory(root)
    for key, value in sut.env.items():
        mp.setenv(key, value)
    client = SRClient(sut, new_sr_uuid())
    try:
        client.create_sr()
        client.attach()
        yield client
    finally:
        # Best effort: a test that already detached or destroyed the SR, or broke it, must still clean up.
        with contextlib.suppress(Exception):
            client.reload()
            client.detach()
        sut.cleanup()
