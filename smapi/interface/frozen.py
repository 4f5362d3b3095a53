"""`@frozen`: immutable value classes for the definitions, without `dataclasses`.

The definitions are imported by every per-verb executable, and xapi starts one process per storage call.
`dataclasses` (with the `inspect` module it pulls in) and its generated methods cost about a third of that
start-up, so the definition classes use this small decorator instead: fields are the class's own annotations in
order, defaults are class attributes, instances are read-only, equality and hashing cover the public fields.
`__post_init__` runs after construction when defined (use `object.__setattr__` there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Tuple, TypeVar

T = TypeVar("T", bound=type)
_MISSING = object()

if TYPE_CHECKING:
    # Type checkers then see the constructors and the immutability this decorator makes, as for a frozen dataclass.
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Callable[[T], T]:
        return lambda decorator: decorator


@dataclass_transform(frozen_default=True)
def frozen(cls: T) -> T:
    names: Tuple[str, ...] = tuple(n for n, a in cls.__dict__.get("__annotations__", {}).items()
                                   if not str(a).startswith("ClassVar"))
    defaults: Dict[str, Any] = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    public = tuple(n for n in names if not n.startswith("_"))
    for n in defaults:  # the class attribute would otherwise shadow nothing useful; keep lookups on instances
        delattr(cls, n)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__} takes at most {len(names)} arguments")
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError(f"{cls.__name__}: unexpected or repeated argument {key!r}")
            values[key] = value
        for n in names:
            value = values.get(n, _MISSING)
            if value is _MISSING:
                value = defaults.get(n, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{cls.__name__} missing argument {n!r}")
            object.__setattr__(self, n, value)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise AttributeError(f"{cls.__name__} is immutable")

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in public)

    def __hash__(self: Any) -> int:
        return hash((cls.__name__, *(_hashable(getattr(self, n)) for n in public)))

    cls.__init__ = __init__  # type: ignore[misc]
    cls.__setattr__ = __setattr__  # type: ignore[assignment]
    cls.__eq__ = __eq__  # type: ignore[assignment]
    cls.__hash__ = __hash__  # type: ignore[assignment]
    def __repr__(self: Any) -> str:
        return f"{cls.__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in public)})"

    if cls.__repr__ is object.__repr__:  # keep a repr the class or its bases define
        cls.__repr__ = __repr__  # type: ignore[assignment]
    cls.__frozen_fields__ = names  # type: ignore[attr-defined]
    return cls


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value
