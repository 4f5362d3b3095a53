"""The SR engine's naming rules: every name that becomes part of a path is checked here first.

The engine turns names into paths: an SR uuid into `<run>/srs/<sr>.json` and `<run>/locks/<sr>/`, a VDI uuid into
`<sr>/.locks/vdi-<vdi>` and `<sr>/<vdi>.vhd`, a journal key into `<sr>/.journal/<key>.json`. A name holding `/`,
`..`, NUL or a few thousand characters would reach outside the SR or fail deep inside with a Python error, so
each is refused here with `Invalid_argument` naming the argument, before anything is opened or created.

Why here and not in `smapi.interface`: the interface calls a VDI "e.g. path on a storage system", so another
driver may legitimately use keys that are paths. These limits belong to the engine, which builds paths from
names; the engine also creates every VDI uuid itself (`new_uuid`, or a caller's wish that passes `is_vdi_name`),
so no VDI it holds can fail these checks.

Text the engine stores and returns (names, descriptions, sm_config) must travel over every transport. XML 1.0
cannot carry most control characters even as character references, so one stored `\\x01` would make SR.scan
over XML-RPC fail for the whole SR, forever; such text is refused when it is set.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from smapi.interface.errors import Invalid_argument

#: longest SR or VDI name: leaves room for prefixes and extensions within a 255-byte file name
MAX_NAME = 128
#: longest stored text (a name or description); xapi's own limit for name_label is far below this
MAX_TEXT = 16384

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}" % (MAX_NAME - 1))  # noqa: UP031 - braces of a regex
_NAME_RULE = (f"must be 1 to {MAX_NAME} letters, digits, '_', '.' or '-', starting with a letter or digit "
              f"(a uuid is fine)")
#: what XML 1.0 can carry (https://www.w3.org/TR/xml/#charsets); surrogates cannot be encoded either
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_name(value: Any) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(arg: str, value: Any) -> str:
    """`value` as a name that may become a path component; Invalid_argument naming `arg` otherwise."""
    if not is_name(value):
        raise Invalid_argument(arg, f"{_shown(value)} is not a valid name: it {_NAME_RULE}")
    return value


def check_sr(sr: Any, arg: str = "sr") -> str:
    return check_name(arg, sr)


def check_vdi(vdi: Any, arg: str = "vdi") -> str:
    return check_name(arg, vdi)


def check_component(arg: str, value: Any) -> str:
    """A file name the engine made itself (a volume, lock or journal key): one plain path component.

    Wider than `check_name` (a lock is `vdi-<uuid>`, a volume `<uuid>.vhd`), but never a separator, NUL, a
    leading dot or an over-long name: a caller's name that slipped past the verb's own check still cannot escape.
    """
    if not isinstance(value, str) or not value or len(value) > 250 or value.startswith(".") \
            or "/" in value or "\0" in value or "\\" in value:
        raise Invalid_argument(arg, f"{_shown(value)} is not a valid {arg} name (one path component)")
    return value


def check_text(arg: str, value: Any) -> Any:
    """Text that is stored and sent back over every transport: refused if XML cannot carry it or it is huge."""
    if not isinstance(value, str):
        return value  # the interface's type check has already refused wrong types where the type is string
    if len(value) > MAX_TEXT:
        raise Invalid_argument(arg, f"{len(value)} characters; at most {MAX_TEXT} are stored")
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise Invalid_argument(arg, f"character {bad.group()!r} at position {bad.start()} cannot be sent over "
                                    f"XML-RPC; remove control characters")
    return value


def check_texts(prefix: str, values: Mapping[str, Any]) -> None:
    """Every key and value of a stored string map (sm_config) through `check_text`."""
    for key, value in values.items():
        check_text(f"{prefix} key", key)
        check_text(f"{prefix}[{key!r}]", value)
