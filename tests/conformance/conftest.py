"""Fixture layer of the SR conformance suite: one set of tests, run unchanged against every SR driver.

Adding a driver
---------------
Write a factory `factory(tmp_path) -> SRUnderTest` (see `tests/sr/drivers.py`: `.driver_spec`,
`.device_config`, `.env`, `.cleanup()`) and add it to `tests.sr.drivers.FACTORIES` under a short name. Every
test here is then parametrised with it (`test_x[file]`, `test_x[lvm]`, ...). An out-of-tree driver can be
run without editing the repository:

    SMAPI_CONFORMANCE_FACTORIES="mysr=mypkg.testing:factory,other=/path/f.py:factory" pytest tests/conformance

and `SMAPI_CONFORMANCE_DRIVERS=file,mysr` runs only those (the NFS and LVM SRs take minutes where file takes
seconds; `-k file` selects the same tests without importing anything else).

What a driver must offer beyond the storage interface (the interface has no read/write verb):

* `open_vdi(sr, vdi, writable=False)` returning a handle with `read(offset, length)`, `write(offset, data)`,
  `flush()`, `close()` and `size`; looked up on the driver object, its `engine`, or its implementation objects;
* `gc(sr)`, which runs garbage collection and coalesce to completion, looked up the same way;
* optionally `FAULT_STEPS` (see `test_crash.py`) for the crash-recovery tests.

Factories must give SRs that can be attached together on one host when called twice with different
directories; the second factory's `env` is ignored (it is the same host), only its `device_config` is used.
`SMAPI_RUN_DIR` is the framework's host-local state directory: the tests point it at an empty directory to
simulate a rebooted or different host.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import random
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from smapi.core.driver import Driver, load_driver
from tests.sr.drivers import FACTORIES, SRUnderTest

MiB = 1 << 20
#: the interface's own default for snapshot_time: a snapshot must carry a real time instead
EPOCH = "19700101T00:00:00Z"
Factory = Callable[[Any], SRUnderTest]


# --- the registry of SRs under test ---------------------------------------------------------------------


def _load_ref(ref: str) -> Any:
    """`module:attr` or `/path/file.py:attr` (kept local: tests must not depend on a private loader)."""
    module_ref, attr = ref.rsplit(":", 1)
    if module_ref.endswith(".py"):
        name = "conformance_factory_" + Path(module_ref).stem
        spec = importlib.util.spec_from_file_location(name, module_ref)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module_ref}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_ref)
    return getattr(module, attr)


def registry() -> Dict[str, Factory]:
    """Every factory: the in-tree ones plus `SMAPI_CONFORMANCE_FACTORIES` (name=ref,name=ref), restricted to
    `SMAPI_CONFORMANCE_DRIVERS` (name,name) when that is set."""
    out: Dict[str, Factory] = dict(FACTORIES)
    for item in filter(None, os.environ.get("SMAPI_CONFORMANCE_FACTORIES", "").split(",")):
        name, _, ref = item.partition("=")
        out[name.strip()] = _load_ref(ref.strip())
    only = [n.strip() for n in os.environ.get("SMAPI_CONFORMANCE_DRIVERS", "").split(",") if n.strip()]
    if only:
        unknown = sorted(set(only) - set(out))
        if unknown:
            # a typo must not silently run nothing
            raise pytest.UsageError(f"SMAPI_CONFORMANCE_DRIVERS names unknown SR types {unknown}; known: {sorted(out)}")
        out = {n: out[n] for n in only}
    return out


REGISTRY = registry()


# --- helpers usable without fixtures (worker processes, hypothesis examples) ----------------------------


def pattern(seed: Any, length: int) -> bytes:
    """Deterministic, incompressible bytes: two different seeds never read alike by accident."""
    return random.Random(repr(seed)).randbytes(length)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_hook(driver: Driver, name: str) -> Callable[..., Any]:
    """A driver-level hook (`open_vdi`, `gc`) from the driver, its engine, or its implementation objects."""
    places: List[Any] = [driver, getattr(driver, "engine", None)]
    for impl in driver.implementations("storage").values():
        places += [impl, getattr(impl, "engine", None)]
    for place in places:
        fn = getattr(place, name, None)
        if callable(fn):
            return fn
    pytest.fail(f"driver {type(driver).__module__}.{type(driver).__qualname__} offers no {name}(); the "
                f"conformance suite needs it on the driver, driver.engine or an implementation object")


class SRClient:
    """One SR of the driver under test, driven through the dispatcher exactly as every transport drives it."""

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


def new_sr_uuid() -> str:
    return str(uuid.uuid4())


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


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(params=sorted(REGISTRY))
def factory(request: pytest.FixtureRequest) -> Factory:
    """The factory of the SR type under test (the suite is parametrised over the registry)."""
    return REGISTRY[request.param]


@pytest.fixture
def sut(factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SRUnderTest]:
    """The SR under test, not yet created, with its environment applied (subprocesses inherit it)."""
    made = factory(tmp_path / "sut")
    for key, value in made.env.items():
        monkeypatch.setenv(key, value)
    yield made
    made.cleanup()


@pytest.fixture
def sr(sut: SRUnderTest) -> Iterator[SRClient]:
    """A created and attached SR."""
    client = SRClient(sut, new_sr_uuid())
    client.create_sr()
    client.attach()
    yield client
    with contextlib.suppress(Exception):
        client.reload()
        client.detach()


@pytest.fixture
def second_sr(factory: Factory, sut: SRUnderTest, tmp_path: Path) -> Iterator[SRClient]:
    """Another SR of the same type attached on the same host (same environment as `sr`)."""
    other = factory(tmp_path / "second")
    client = SRClient(sut, new_sr_uuid(), device_config=other.device_config)
    client.create_sr()
    client.attach()
    yield client
    with contextlib.suppress(Exception):
        client.reload()
        client.detach()
    other.cleanup()
