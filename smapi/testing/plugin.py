"""The pytest plugin of the conformance suite: which SR types to run against, and the fixtures the tests use.

Every test that takes `factory` (directly or through `sut`, `sr`, `second_sr`) is parametrised over the
registry of SR types: `test_x[file]`, `test_x[lvm]`, ... The registry holds what was `register`ed (the
`smapi conformance` command registers the one driver it certifies; the project's own tests register its file,
NFS, LVM and iSCSI factories), plus `SMAPI_CONFORMANCE_FACTORIES="name=module:factory,other=/path/f.py:factory"`,
restricted to `SMAPI_CONFORMANCE_DRIVERS=name,name` when that is set.

Tests marked `@needs(...)` (smapi.testing.features) are skipped, with the reason, against a driver that does not
declare those features or offer those hooks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

import pytest

from smapi.testing.client import SRClient, new_sr_uuid
from smapi.testing.features import MARKER, skip_reason, wanted_by
from smapi.testing.sut import CERTIFY_ENV, Factory, SRUnderTest, factory_from_environment, file_sr_factory, load_ref

_registered: Dict[str, Factory] = {}


def register(factories: Mapping[str, Factory]) -> None:
    """Add SR types to the registry (a conftest of the project's own tests does, before collection)."""
    _registered.update(factories)


def registry() -> Dict[str, Factory]:
    """Every SR type to run against (the file SR when nothing was registered)."""
    certify = os.environ.get(CERTIFY_ENV)
    if certify:
        return dict([factory_from_environment(certify)])
    out: Dict[str, Factory] = dict(_registered) or {"file": file_sr_factory}
    for item in filter(None, os.environ.get("SMAPI_CONFORMANCE_FACTORIES", "").split(",")):
        name, _, ref = item.partition("=")
        try:
            out[name.strip()] = load_ref(ref.strip())
        except (ImportError, AttributeError, ValueError) as e:
            raise pytest.UsageError(f"SMAPI_CONFORMANCE_FACTORIES: {e}") from e
    only = [n.strip() for n in os.environ.get("SMAPI_CONFORMANCE_DRIVERS", "").split(",") if n.strip()]
    if only:
        unknown = sorted(set(only) - set(out))
        if unknown:
            # a typo must not silently run nothing
            raise pytest.UsageError(f"SMAPI_CONFORMANCE_DRIVERS names unknown SR types {unknown}; known: {sorted(out)}")
        out = {n: out[n] for n in only}
    return out


# --- hooks ----------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*what): features the driver must declare (VDI_SNAPSHOT...) and "
                                       "hooks it must offer (open_vdi, gc); skipped otherwise")
    config.addinivalue_line("markers", "slow: long-running test")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "factory" in metafunc.fixturenames:
        names = sorted(registry())
        metafunc.parametrize("factory", names, indirect=True, ids=names)


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def factory(request: pytest.FixtureRequest) -> Factory:
    """The factory of the SR type under test; it skips the test when the driver lacks what the test needs."""
    made = registry()[request.param]
    wanted = wanted_by(request.node)
    if not wanted:
        return made

    def checked(directory: Any) -> SRUnderTest:
        sut = made(directory)
        reason = skip_reason(sut.driver_spec, wanted)
        if reason is not None:
            sut.cleanup()
            pytest.skip(reason)
        return sut

    return checked


@pytest.fixture
def sut(factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SRUnderTest]:
    """The SR under test, not yet created, with its environment applied (subprocesses inherit it)."""
    made = factory(tmp_path / "sut")
    for key, value in made.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMAPI_FAULT", raising=False)
    yield made
    made.cleanup()


def _attached(sut: SRUnderTest, device_config: Optional[Dict[str, str]] = None) -> Iterator[SRClient]:
    client = SRClient(sut, new_sr_uuid(), device_config=device_config)
    client.create_sr()
    client.attach()
    yield client
    with contextlib.suppress(Exception):
        client.reload()
        client.detach()


@pytest.fixture
def sr(sut: SRUnderTest) -> Iterator[SRClient]:
    """A created and attached SR."""
    yield from _attached(sut)


@pytest.fixture
def second_sr(factory: Factory, sut: SRUnderTest, tmp_path: Path) -> Iterator[SRClient]:
    """Another SR of the same type attached on the same host (same environment as `sr`)."""
    other = factory(tmp_path / "second")
    try:
        yield from _attached(sut, other.device_config)
    finally:
        other.cleanup()
