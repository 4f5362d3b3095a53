"""The shape of an interface definition: APIs hold interfaces, interfaces hold methods, methods hold params.

Definitions are plain frozen data. Everything else (skeleton classes, argument checking, dispatch tables,
clients, per-verb executables, CLI help, the generated reference) is derived from them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple
from typing import Type as PyType

from smapi.interface.errors import SmapiError
from smapi.interface.frozen import frozen
from smapi.interface.types import _NO_DEFAULT, Field, Type, named_types


@frozen
class Param:
    """One named argument (or the named result) of a method."""

    name: str
    type: Type
    description: str = ""
    #: a default makes the argument optional for callers; the driver still receives a value
    default: Any = _NO_DEFAULT

    @property
    def optional(self) -> bool:
        return self.default is not _NO_DEFAULT

    def as_field(self) -> Field:
        return Field(self.name, self.type, self.description, self.default)


@frozen
class Method:
    name: str
    description: str
    params: Tuple[Param, ...]
    #: None for a method that returns nothing (`unit`)
    result: Optional[Param] = None
    #: the error names this method documents raising (all errors of the API may still occur)
    errors: Tuple[str, ...] = ()

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


@frozen
class Interface:
    name: str
    description: str
    methods: Tuple[Method, ...]

    def method(self, name: str) -> Method:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def skeleton_name(self) -> str:
        return f"{self.name}_skeleton"


@frozen
class Api:
    """A family of interfaces served together, e.g. the storage interface (Query, VDI, SR)."""

    name: str
    title: str
    description: str
    version: str
    interfaces: Tuple[Interface, ...]
    errors: Tuple[PyType[SmapiError], ...]
    #: where the definition comes from (seed file or reference section), for the docs
    source: str = ""

    def __post_init__(self) -> None:
        index: Dict[str, Tuple[Interface, Method]] = {}
        object.__setattr__(self, "_index", index)
        for iface in self.interfaces:
            for m in iface.methods:
                index[f"{iface.name}.{m.name}".lower()] = (iface, m)

    def interface(self, name: str) -> Interface:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise KeyError(name)

    def lookup(self, wire_name: str) -> Optional[Tuple[Interface, Method]]:
        """Find `Interface.verb`; case-insensitive, as xapi-storage-script resolves script names."""
        index: Dict[str, Tuple[Interface, Method]] = vars(self)["_index"]  # set by __post_init__
        return index.get(wire_name.lower())

    def wire_names(self) -> List[str]:
        return [f"{i.name}.{m.name}" for i in self.interfaces for m in i.methods]

    def types(self) -> List[Type]:
        """Named types used by this API, for the reference docs."""
        used: List[Type] = []
        for i in self.interfaces:
            for m in i.methods:
                used.extend(p.type for p in m.params)
                if m.result is not None:
                    used.append(m.result.type)
        return named_types(used)
