"""Drivers: a bundle of skeleton implementations, and how to find one by name.

A driver subclasses `Driver` and says, per API, which class implements each interface:

    class MyDriver(Driver):
        name = "mysr"
        storage = {"Query": MyQuery, "SR": MySR, "VDI": MyVDI}

Each implementation class is a skeleton subclass; it is constructed with the driver instance, so the SR and
VDI implementations can share state through it. Every call to a driver goes through its dispatcher, whether it
comes from a transport, the CLI or another part of smapi:

    driver = load_driver("file")
    driver.call("storage", "SR.scan", dbg="trace-1", sr=sr)     # or driver.dispatcher("storage").call(...)
 Drivers are found by name through the `smapi.drivers`
entry-point group (a vendor's package registers its own), or by a `module:attribute` or `path/file.py:attribute`
reference.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, ClassVar, Dict, Iterator, List, Mapping, Optional, Tuple, Type, Union

from smapi.core.dispatcher import Dispatcher
from smapi.interface.apis import get_api
from smapi.interface.errors import Unimplemented

ENTRY_POINT_GROUP = "smapi.drivers"


#: an implementation: the class itself, or "module:Class" so that its import waits until a call needs it
ImplementationRef = Union[type, str]


class Driver:
    """Groups a driver's implementations, one per interface, for each API it serves.

    Implementations may be given as "module:Class" strings: they are imported and constructed only when a call
    reaches that interface, so a per-verb executable answering `Plugin.Query` does not load the SR engine.
    """

    #: the driver's name (the SR type)
    name: ClassVar[str] = "driver"
    #: interface name -> implementation, for the storage interface (Query, VDI, SR)
    storage: ClassVar[Mapping[str, ImplementationRef]] = {}
    #: the same for SMAPIv3 (Plugin, SR, Volume, Datapath)
    v3: ClassVar[Mapping[str, ImplementationRef]] = {}
    #: the same for the Transfer API
    transfer: ClassVar[Mapping[str, ImplementationRef]] = {}
    #: features no verb stands for (SR_CACHING, ...), advertised as given; the others are derived (`features`)
    extra_features: ClassVar[Tuple[str, ...]] = ()
    #: the features written out, for a driver whose implementations are imported lazily ("module:Class"), so that
    #: answering Query.query does not import them; tests/test_features.py checks they equal the derived ones
    declared_features: ClassVar[Optional[Tuple[str, ...]]] = None

    def __init__(self) -> None:
        self._impls: Dict[str, _Implementations] = {}
        self._dispatchers: Dict[str, Dispatcher] = {}

    def dispatcher(self, api: str) -> Dispatcher:
        """The dispatcher of `api` for this driver: made on first use, then shared by every caller of the driver."""
        found = self._dispatchers.get(api)
        if found is None:
            found = self._dispatchers[api] = Dispatcher(get_api(api), self.implementations(api))
        return found

    def call(self, api: str, verb: str, /, **args: Any) -> Any:
        """Call `verb` (a wire name such as "SR.attach") of `api` with named arguments, checked both ways.

        Raises the typed SMAPI error the verb fails with. The arguments are positional-only so that a verb's own
        argument names (`api`, `verb`) never collide with them.
        """
        return self.dispatcher(api).call(verb, args)

    def implementations(self, api: str) -> Mapping[str, Any]:
        """The implementation objects serving `api`; each is created on first use, once per driver instance."""
        if api not in self._impls:
            self._impls[api] = _Implementations(self, self.implementation_classes(api))
        return self._impls[api]

    def implementation_classes(self, api: str) -> Mapping[str, ImplementationRef]:
        """The implementations serving `api`. A driver with storage-interface implementations also serves SMAPIv3,
        through `smapi.core.v3_adapter`, for every v3 interface it does not implement itself."""
        classes: Dict[str, ImplementationRef] = dict(getattr(type(self), api, None) or {})
        if api == "v3" and type(self).storage:
            for iface in ("Plugin", "SR", "Volume", "Datapath"):
                classes.setdefault(iface, f"smapi.core.v3_adapter:{iface}OnStorage")
            classes.setdefault("Data", "smapi.core.v3_data:DataOnStorage")
        if not classes:
            raise Unimplemented(f"the {api} API (driver {self.name} does not serve it)")
        return classes

    def features(self) -> List[str]:
        """What Query.query advertises: the features of `smapi.interface.features.STORAGE_FEATURES` whose verbs
        this driver implements, then `extra_features` (or `declared_features` when the driver declares them)."""
        if self.declared_features is not None:
            return list(self.declared_features)
        return self.derived_features()

    def derived_features(self) -> List[str]:
        """The features derived from the implemented verbs (imports every storage implementation)."""
        from smapi.interface.features import STORAGE_FEATURES, features_of

        return features_of(STORAGE_FEATURES, self.implemented_verbs("storage")) + list(self.extra_features)

    def implemented_verbs(self, api: str) -> List[str]:
        """The wire names ("SR.attach") of the verbs of `api` this driver implements: its implementation class
        defines the method itself or inherits it from anything but the generated skeleton, and not as a verb that
        only explains its refusal (`smapi.core.v3_features.refused`)."""
        from smapi.core.v3_features import implemented

        found: List[str] = []
        if not self.serves(api):
            return found
        classes = self.implementation_classes(api)
        for iface in get_api(api).interfaces:
            ref = classes.get(iface.name)
            if ref is None:
                continue
            cls = _load_attribute(*ref.rsplit(":", 1)) if isinstance(ref, str) else ref
            found += [f"{iface.name}.{m.name}" for m in iface.methods if implemented(cls, m.name)]
        return found

    def serves(self, api: str) -> bool:
        try:
            return bool(self.implementation_classes(api))
        except Unimplemented:
            return False

    # -- optional capabilities for tools (CLI vdi-import/export, VDI.copy, the Transfer service, sr-gc) ----------
    # A driver without them keeps these defaults, which raise Unimplemented naming the capability.
    def open_vdi(self, sr: str, vdi: str, writable: bool = False) -> Any:
        """A data handle on VDI `vdi` of SR `sr`, attached on this host: `read(offset, length)`,
        `write(offset, data)`, `flush()`, `close()` and `size`; it holds the VDI's lock until closed."""
        raise Unimplemented(f"data access (open_vdi) in driver {self.name}")

    def gc(self, sr: str) -> Any:
        """Garbage-collect SR `sr` now (attached on this host); returns what was done."""
        raise Unimplemented(f"garbage collection in driver {self.name}")


class _Implementations(Mapping):
    """Interface name -> implementation object, importing and constructing each on first access."""

    def __init__(self, driver: Driver, refs: Mapping[str, ImplementationRef]) -> None:
        self._driver = driver
        self._refs = dict(refs)
        self._made: Dict[str, Any] = {}

    def __getitem__(self, iface: str) -> Any:
        if iface not in self._made:
            ref = self._refs[iface]
            cls = _load_attribute(*ref.rsplit(":", 1)) if isinstance(ref, str) else ref
            self._made[iface] = cls(self._driver)
        return self._made[iface]

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


class DriverNotFound(LookupError):
    pass


def _load_attribute(module_ref: str, attr: str) -> Any:
    if module_ref.endswith(".py") or os.sep in module_ref:
        path = os.path.abspath(module_ref)
        if not os.path.isfile(path):
            raise DriverNotFound(f"no driver file {path}")
        # only for drivers given as files: the per-verb executables of packaged drivers skip this import
        from importlib.util import module_from_spec, spec_from_file_location

        mod_name = "smapi_driver_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
        spec = spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise DriverNotFound(f"cannot load {path}")
        module = module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as e:
            raise DriverNotFound(f"cannot import {module_ref}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise DriverNotFound(f"{module_ref} has no attribute {attr}") from None


def resolve_driver_class(spec: str) -> Type[Driver]:
    """Find a driver class from a name (entry point), `module:Class` or `file.py:Class`."""
    if ":" in spec:
        module_ref, attr = spec.rsplit(":", 1)
        obj = _load_attribute(module_ref, attr)
    else:
        obj = _entry_point(spec)
    if not (isinstance(obj, type) and issubclass(obj, Driver)):
        raise DriverNotFound(f"{spec} is not a smapi.core.driver.Driver subclass")
    return obj


def load_driver(spec: str) -> Driver:
    return resolve_driver_class(spec)()


def _entry_point(name: str) -> Any:
    for ep in driver_entry_points():
        if ep.name == name:
            return ep.load()
    known = ", ".join(sorted(ep.name for ep in driver_entry_points())) or "none installed"
    raise DriverNotFound(f"no driver named {name!r} (known: {known}; or give module:Class or file.py:Class)")


def driver_entry_points() -> list:
    from importlib import metadata

    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, []))  # Python < 3.10


def driver_reference(spec: str) -> str:
    """A `module:Class` (or absolute `file.py:Class`) reference that loads without entry-point lookup.

    Per-verb executables bake this in: scanning entry points costs tens of milliseconds per call, and xapi
    forks one executable per call.
    """
    cls = resolve_driver_class(spec)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__.startswith("smapi_driver_") and file:
        return f"{os.path.abspath(file)}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def optional_attr(obj: Any, name: str) -> Optional[Any]:
    return getattr(obj, name, None)
