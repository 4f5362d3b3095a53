"""All APIs by name. Imported lazily by name so a per-verb executable loads only the definitions it serves."""

from __future__ import annotations

import importlib
from typing import Dict, Tuple

from smapi.interface.model import Api

#: api name -> (module, attribute)
_WHERE: Dict[str, Tuple[str, str]] = {
    "storage": ("smapi.interface.storage", "STORAGE"),
    "v3": ("smapi.interface.v3", "V3"),
    "transfer": ("smapi.interface.transfer", "TRANSFER"),
}

API_NAMES = tuple(_WHERE)


def get_api(name: str) -> Api:
    try:
        module, attr = _WHERE[name]
    except KeyError:
        raise KeyError(f"unknown API {name!r}; known: {', '.join(API_NAMES)}") from None
    return getattr(importlib.import_module(module), attr)


def all_apis() -> Tuple[Api, ...]:
    return tuple(get_api(n) for n in API_NAMES)
