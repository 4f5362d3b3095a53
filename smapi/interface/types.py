"""The type language of the SMAPI interfaces.

Every argument, result, record and error payload is described by a `Type`. A type knows how to check and
normalise a value arriving from any transport (`check`), how to describe itself in the reference docs (`doc`),
and how to build a plausible example (`example`, used by docs and tests).

Values are plain Python data, exactly as they look on the wire once decoded: records are dicts, lists are
lists, `(string * string) list` is a dict, variants are a bare tag string (constant constructor) or a
two-element list `[tag, payload]`. Keeping the wire shape avoids a second object model that could drift.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from smapi.interface.frozen import frozen

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class TypeCheckError(ValueError):
    """A value does not match its declared type. `where` is a path such as `vdi_info.virtual_size`."""

    def __init__(self, where: str, expected: str, got: Any):
        self.where = where
        self.expected = expected
        self.got = got
        super().__init__(f"{where}: expected {expected}, got {describe_value(got)}")


def describe_value(value: Any) -> str:
    """A short, safe description of an offending value for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


class Type:
    """Base of all types. Subclasses implement `check`, `doc` and `example`."""

    # Every subclass has a `name`: the name used in docs and signatures, e.g. "string", "vdi_info". It is
    # not declared here because @frozen subclasses declare it as a field.
    name: str

    def check(self, value: Any, where: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def doc(self) -> str:
        return self.name

    def example(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def walk(self) -> List[Type]:
        """This type and every type it is built from (for docs: which records to list)."""
        return [self]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.doc()}>"


class _String(Type):
    name = "string"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise TypeCheckError(where, "string", value)
        return value

    def example(self) -> str:
        return "string"


class _Int64(Type):
    """A 64-bit signed integer.

    Non-strict XML-RPC (what xapi sends) carries int64 as an untyped value, which decodes as a string, so a
    string of decimal digits is accepted and converted. Booleans are not integers here.
    """

    name = "int64"

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool):
            raise TypeCheckError(where, "int64", value)
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text, 10)
            except ValueError:
                raise TypeCheckError(where, "int64", value) from None
        if not isinstance(value, int):
            raise TypeCheckError(where, "int64", value)
        if not INT64_MIN <= value <= INT64_MAX:
            raise TypeCheckError(where, "int64 (out of range)", value)
        return value

    def example(self) -> int:
        return 0


class _Bool(Type):
    name = "bool"

    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise TypeCheckError(where, "bool", value)
        return value

    def example(self) -> bool:
        return True


class _Float(Type):
    name = "float"

    def check(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeCheckError(where, "float", value)
        return float(value)

    def example(self) -> float:
        return 0.0


class _Unit(Type):
    """No value (a verb with no result). Accepts None."""

    name = "unit"

    def check(self, value: Any, where: str) -> None:
        if value is not None:
            raise TypeCheckError(where, "nothing (null)", value)
        return None

    def example(self) -> None:
        return None


STRING = _String()
INT64 = _Int64()
BOOL = _Bool()
FLOAT = _Float()
UNIT = _Unit()


@frozen
class Alias(Type):
    """A documented name for another type (e.g. `debug_info` = string)."""

    name: str
    base: Type
    description: str = ""

    def check(self, value: Any, where: str) -> Any:
        return self.base.check(value, where)

    def example(self) -> Any:
        return self.base.example()

    def walk(self) -> List[Type]:
        return [self, *self.base.walk()]


@frozen
class ListOf(Type):
    item: Type

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.item.doc()} list"

    def doc(self) -> str:
        return self.name

    def check(self, value: Any, where: str) -> List[Any]:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise TypeCheckError(where, self.doc(), value)
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def example(self) -> List[Any]:
        return [self.item.example(), self.item.example()]

    def walk(self) -> List[Type]:
        return [self, *self.item.walk()]


@frozen
class StringMap(Type):
    """`(string * string) list` on the OCaml side: a struct/object of string values on the wire."""

    @property
    def name(self) -> str:  # type: ignore[override]
        return "(string * string) list"

    def doc(self) -> str:
        return self.name

    def check(self, value: Any, where: str) -> Dict[str, str]:
        if isinstance(value, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            value = dict(value)  # an association list is the same thing
        if not isinstance(value, dict):
            raise TypeCheckError(where, self.doc(), value)
        out: Dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeCheckError(f"{where} key", "string", k)
            if not isinstance(v, str):
                raise TypeCheckError(f"{where}[{k!r}]", "string", v)
            out[k] = v
        return out

    def example(self) -> Dict[str, str]:
        return {"string": "string"}


STRING_MAP = StringMap()


@frozen
class Optional_(Type):
    """`t option`: None or a value of `item`. As a record field it is simply omitted when None."""

    item: Type

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.item.doc()} option"

    def doc(self) -> str:
        return self.name

    def check(self, value: Any, where: str) -> Any:
        if value is None:
            return None
        return self.item.check(value, where)

    def example(self) -> Any:
        return self.item.example()

    def walk(self) -> List[Type]:
        return [self, *self.item.walk()]


@frozen
class Tuple_(Type):
    """`a * b`: a fixed-length array on the wire (how rpclib marshals tuples)."""

    items: Tuple[Type, ...]

    @property
    def name(self) -> str:  # type: ignore[override]
        return " * ".join(t.doc() for t in self.items)

    def doc(self) -> str:
        return self.name

    def check(self, value: Any, where: str) -> List[Any]:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list) or len(value) != len(self.items):
            raise TypeCheckError(where, f"[{self.doc()}]", value)
        return [t.check(v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(self.items, value))]

    def example(self) -> List[Any]:
        return [t.example() for t in self.items]

    def walk(self) -> List[Type]:
        out: List[Type] = [self]
        for t in self.items:
            out.extend(t.walk())
        return out


_NO_DEFAULT = object()


@frozen
class Field:
    """A record member. `default` makes it optional on input (SMAPIv2 records use `[@default]` widely)."""

    name: str
    type: Type
    description: str = ""
    default: Any = _NO_DEFAULT
    #: a callable producing the default, for mutable defaults
    default_factory: Optional[Callable[[], Any]] = None

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT and self.default_factory is None and not isinstance(
            self.type, Optional_
        )

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        if self.default is not _NO_DEFAULT:
            return self.default
        return None


@frozen
class Record(Type):
    """A struct.

    Members the definition does not know are dropped, as rpclib does: newer toolstacks add members (e.g.
    `cbt_enabled` in vdi_info) and an older plugin must still accept the call. Missing members take their
    default, or are an error when the member has none.
    """

    name: str
    fields: Tuple[Field, ...]
    description: str = ""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def check(self, value: Any, where: str) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise TypeCheckError(where, f"{self.name} (a struct)", value)
        out: Dict[str, Any] = {}
        for f in self.fields:
            if f.name in value and value[f.name] is not None:
                out[f.name] = f.type.check(value[f.name], f"{where}.{f.name}")
            elif f.required:
                raise TypeCheckError(f"{where}.{f.name}", f"{f.type.doc()} (missing)", None)
            else:
                default = f.make_default()
                if default is not None:
                    out[f.name] = default
        return out

    def make(self, **values: Any) -> Dict[str, Any]:
        """Build a record with defaults filled in, checked."""
        return self.check(values, self.name)

    def example(self) -> Dict[str, Any]:
        return {f.name: f.type.example() for f in self.fields}

    def walk(self) -> List[Type]:
        out: List[Type] = [self]
        for f in self.fields:
            out.extend(f.type.walk())
        return out


@frozen
class Case:
    """A variant constructor: `tag` alone (constant) or `tag of payload`."""

    tag: str
    payload: Optional[Type] = None
    description: str = ""


@frozen
class Variant(Type):
    """A sum type, marshalled as rpclib does: a bare tag string, or `[tag, payload]`."""

    name: str
    cases: Tuple[Case, ...]
    description: str = ""

    def case(self, tag: str) -> Case:
        for c in self.cases:
            if c.tag == tag:
                return c
        raise KeyError(tag)

    def check(self, value: Any, where: str) -> Any:
        tags = ", ".join(c.tag for c in self.cases)
        if isinstance(value, str):
            try:
                case = self.case(value)
            except KeyError:
                raise TypeCheckError(where, f"{self.name} (one of {tags})", value) from None
            if case.payload is not None:
                raise TypeCheckError(where, f"{self.name}: {value} needs a payload", value)
            return value
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, list) and len(value) in (1, 2) and isinstance(value[0], str):
            try:
                case = self.case(value[0])
            except KeyError:
                raise TypeCheckError(where, f"{self.name} (one of {tags})", value) from None
            if case.payload is None:
                if len(value) == 1:
                    return case.tag
                raise TypeCheckError(where, f"{self.name}: {case.tag} takes no payload", value)
            if len(value) != 2:
                raise TypeCheckError(where, f"{self.name}: {case.tag} needs a payload", value)
            return [case.tag, case.payload.check(value[1], f"{where}.{case.tag}")]
        raise TypeCheckError(where, f"{self.name} (one of {tags})", value)

    def example(self) -> Any:
        c = self.cases[0]
        return c.tag if c.payload is None else [c.tag, c.payload.example()]

    def walk(self) -> List[Type]:
        out: List[Type] = [self]
        for c in self.cases:
            if c.payload is not None:
                out.extend(c.payload.walk())
        return out


@frozen
class Enum_(Type):
    """A closed set of strings (e.g. the Transfer API's `"http" | "bits" | "iscsi"`)."""

    name: str
    values: Tuple[str, ...]
    description: str = ""
    case_insensitive: bool = False

    def check(self, value: Any, where: str) -> str:
        if isinstance(value, str):
            if value in self.values:
                return value
            if self.case_insensitive:
                for v in self.values:
                    if v.lower() == value.lower():
                        return v
        raise TypeCheckError(where, f"{self.name} (one of {', '.join(self.values)})", value)

    def example(self) -> str:
        return self.values[0]


def named_types(types: Sequence[Type]) -> List[Type]:
    """The named (documentable) types reachable from `types`, each once, in first-seen order."""
    seen: Dict[str, Type] = {}
    for t in types:
        for sub in t.walk():
            if isinstance(sub, (Record, Variant, Alias, Enum_)) and sub.name not in seen:
                seen[sub.name] = sub
    return list(seen.values())


def check_mapping(values: Mapping[str, Any], fields: Sequence[Field], where: str) -> Dict[str, Any]:
    """Check a named-argument dict against parameter definitions (shared by records and calls)."""
    return Record(where, tuple(fields)).check(dict(values), where)


__all__ = [
    "Alias", "BOOL", "Case", "Enum_", "FLOAT", "Field", "INT64", "ListOf", "Optional_", "Record", "STRING",
    "STRING_MAP", "StringMap", "Tuple_", "Type", "TypeCheckError", "UNIT", "Variant", "check_mapping",
    "named_types",
]
