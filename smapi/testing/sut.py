"""SRs under test: what a conformance run needs to know about one SR type, and factories that make them.

A *factory* is a callable `factory(directory) -> SRUnderTest`: given an empty directory of its own, it says
which driver to load, the `device_config` of a fresh SR inside that directory (or on storage it set up for it)
and the environment the driver runs under. The suite calls it once per test, so every test has its own SR.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

#: replaced, in every --config value, by the test's own directory
TMP_PLACEHOLDER = "{tmp}"
#: the device_config used when none is given: a directory-based SR in the test's directory
DEFAULT_CONFIG = {"path": TMP_PLACEHOLDER + "/sr"}
#: set by `smapi conformance` (in the environment, so that pytest-xdist workers see it too): the SR type to certify
CERTIFY_ENV = "SMAPI_CONFORMANCE_CERTIFY"


@dataclass
class SRUnderTest:
    """Everything a test needs to drive one SR type."""

    #: a driver name, `module:Class` or `file.py:Class`, as `smapi.core.driver.load_driver` accepts
    driver_spec: str
    #: device_config for SR.create / SR.attach / SR.probe
    device_config: Dict[str, str]
    #: environment variables to set (in-process with monkeypatch, and inherited by subprocesses)
    env: Dict[str, str]
    #: short name of the SR type, for test ids
    name: str = "file"
    _cleanups: List[Callable[[], None]] = field(default_factory=list, repr=False)

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the test is done with this SR (cleanups run last-added first)."""
        self._cleanups.append(fn)

    def cleanup(self) -> None:
        """Undo host-local side effects (loop devices, mounts, daemons); the SR's files go with the directory."""
        while self._cleanups:
            self._cleanups.pop()()


Factory = Callable[[Any], SRUnderTest]


def host_env(root: str) -> Dict[str, str]:
    """A private host-local run directory (never /run/smapi) and synchronous GC (no collector left behind)."""
    run_dir = os.path.join(root, "run")
    os.makedirs(run_dir, exist_ok=True)
    return {"SMAPI_RUN_DIR": run_dir, "SMAPI_GC": "sync"}


def _substitute(config: Mapping[str, Any], root: str) -> Dict[str, str]:
    out = {}
    for key, value in config.items():
        if not isinstance(value, str):
            raise ValueError(f"--config: the value of {key!r} must be a string (device_config maps strings)")
        out[str(key)] = value.replace(TMP_PLACEHOLDER, root)
    return out


def parse_config(text: Optional[str]) -> Dict[str, str]:
    """The --config JSON object (a device_config template), or the default; ValueError with the reason."""
    if text is None:
        return dict(DEFAULT_CONFIG)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--config is not JSON ({e}); give an object such as '{{\"path\": \"{{tmp}}/sr\"}}'") from e
    if not isinstance(value, dict):
        raise ValueError("--config must be a JSON object: the SR's device_config")
    _substitute(value, "")  # type check now, not in the middle of the run
    return value


def config_factory(driver_spec: str, config: Mapping[str, Any], name: Optional[str] = None) -> Factory:
    """A factory for `driver_spec` whose SRs use `config` with `{tmp}` replaced by the test's directory."""

    def factory(directory: PathLike) -> SRUnderTest:
        root = os.fspath(directory)
        os.makedirs(root, exist_ok=True)
        return SRUnderTest(driver_spec=driver_spec, device_config=_substitute(config, root), env=host_env(root),
                           name=name or driver_spec)

    return factory


def file_sr_factory(directory: PathLike) -> SRUnderTest:
    """A file SR in `<directory>/file-sr`."""
    root = os.fspath(directory)
    return SRUnderTest(driver_spec="smapi.drivers.file:FileDriver",
                       device_config={"path": os.path.join(root, "file-sr")}, env=host_env(root), name="file")


def load_ref(ref: str) -> Any:
    """The attribute named by `module:attr` or `/path/file.py:attr` (a factory)."""
    module_ref, _, attr = ref.rpartition(":")
    if not module_ref or not attr:
        raise ValueError(f"{ref!r} is not a module:attribute or file.py:attribute reference")
    if module_ref.endswith(".py"):
        path = os.path.abspath(module_ref)
        name = "conformance_factory_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_ref)
    return getattr(module, attr)


def factory_from_environment(certify: str) -> Tuple[str, Factory]:
    """The SR type `smapi conformance` describes in CERTIFY_ENV: {"driver", "config" | "factory"} as JSON."""
    from smapi.core.driver import load_driver

    spec = json.loads(certify)
    driver = spec["driver"]
    name = load_driver(driver).name
    if spec.get("factory"):
        return name, load_ref(spec["factory"])
    return name, config_factory(driver, parse_config(spec.get("config")), name)
