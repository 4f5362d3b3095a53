"""Generate the skeleton modules from the interface definitions.

Skeletons are written out as real Python source (rather than built at import time) so that vendors, IDEs and
type checkers see every verb with its documented parameters and docstring. `tests/interface` fails when a
checked-in skeleton module differs from what this generator produces; regenerate with
`python -m smapi.interface.codegen`.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Dict, List

from smapi.interface.apis import all_apis
from smapi.interface.model import Api, Interface, Method
from smapi.interface.types import BOOL, FLOAT, INT64, STRING, Alias, ListOf, Optional_, StringMap, Type

SKELETON_DIR = Path(__file__).parent / "skeletons"

HEADER = '''"""{title}: skeletons generated from `{module}`.

DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.

Subclass a skeleton and override the verbs your driver supports; every other verb raises `Unimplemented`
naming itself, which every transport reports as a typed error. Each verb's docstring lists the errors it
documents ("Raises:"); besides those, any verb may raise `Unimplemented` (until a driver overrides it) and
`Invalid_argument` (a missing or mistyped argument, found by the dispatcher before the verb runs).
"""

from __future__ import annotations

{typing_import}
from smapi.interface.errors import Unimplemented
from smapi.interface.skeleton_base import Skeleton
'''


def py_annotation(t: Type) -> str:
    """A readable Python annotation for a definition type (records and variants stay `Any`-like dicts)."""
    if isinstance(t, Alias):
        return py_annotation(t.base)
    if t is STRING:
        return "str"
    if t is INT64:
        return "int"
    if t is BOOL:
        return "bool"
    if t is FLOAT:
        return "float"
    if isinstance(t, StringMap):
        return "Dict[str, str]"
    if isinstance(t, ListOf):
        return f"List[{py_annotation(t.item)}]"
    if isinstance(t, Optional_):
        return f"Optional[{py_annotation(t.item)}]"
    return "Any"


#: the last "Raises:" line of every verb: what any verb may raise besides the errors its definition documents
ALWAYS_RAISED = "Unimplemented, Invalid_argument: see the module docstring"


def _raises_doc(api: Api, m: Method) -> List[str]:
    """The docstring's "Raises:" lines: the documented errors with their descriptions, then ALWAYS_RAISED."""
    by_name = {e.wire_name: e for e in api.errors}
    lines = ["Raises:"]
    for name in m.errors:
        error = by_name.get(name)
        lines.append(f"    {name}: {error.description if error is not None else ''}".rstrip())
    lines.append(f"    {ALWAYS_RAISED}")
    return lines


def _method_source(api: Api, iface: Interface, m: Method) -> str:
    params = ["self"]
    for p in m.params:
        ann = py_annotation(p.type)
        params.append(f"{p.name}: {ann}" + (" = None" if p.optional and p.default is None else ""))
    ret = py_annotation(m.result.type) if m.result is not None else "None"
    doc_lines = textwrap.wrap(m.description, 100) or [""]
    args_doc = [f"{p.name}: {p.description}" for p in m.params]
    if m.result is not None:
        args_doc.append(f"returns {m.result.name} ({m.result.type.doc()}): {m.result.description}")
    body = "\n".join(doc_lines)
    if args_doc:
        body += "\n\n" + "\n".join("\n".join(textwrap.wrap(line, 100, subsequent_indent="    ")) for line in args_doc)
    body += "\n\n" + "\n".join("\n".join(textwrap.wrap(line, 100, subsequent_indent="        "))
                                for line in _raises_doc(api, m))
    docstring = textwrap.indent(f'"""{body}\n"""', " " * 8)
    signature = ", ".join(params)
    if len(signature) + len(m.name) + 20 > 110:
        signature = "\n" + ",\n".join(" " * 8 + p for p in params) + ",\n    "
    return (
        f"    def {m.name}({signature}) -> {ret}:\n"
        f"{docstring}\n"
        f'        raise Unimplemented("{iface.name}.{m.name}")\n'
    )


def interface_source(api: Api, iface: Interface) -> str:
    doc = textwrap.indent('"""' + "\n".join(textwrap.wrap(iface.description, 100)) + '"""', " " * 4)
    out = [f"class {iface.skeleton_name}(Skeleton):\n{doc}\n\n", f'    interface_name = "{iface.name}"\n']
    for m in iface.methods:
        out.append("\n" + _method_source(api, iface, m))
    return "".join(out)


def interface_module_source(api: Api, iface: Interface, module: str) -> str:
    """One interface's skeleton in a module of its own (a whole API in one module grew past 600 lines)."""
    classes = "\n\n" + interface_source(api, iface)
    used = [name for name in ("Any", "Dict", "List", "Optional") if f"{name}[" in classes or f"-> {name}" in classes
            or f": {name}" in classes]
    typing_import = f"from typing import {', '.join(used)}\n" if used else ""
    parts: List[str] = [HEADER.format(title=f"{api.title}, {iface.name}", module=module,
                                      typing_import=typing_import), classes]
    parts.append(f'\n\n__all__ = ["{iface.skeleton_name}"]\n')
    return "".join(parts)


def api_package_source(api: Api, module: str) -> str:
    """The API's package: every interface's skeleton under the names callers import."""
    lines = [f'"""{api.title}: skeletons generated from `{module}`, one module per interface.\n\n'
             'DO NOT EDIT: regenerate with `python -m smapi.interface.codegen`.\n"""\n\n']
    # sorted by module, as ruff's import sorting wants
    lines += sorted(f"from .{iface.name.lower()} import {iface.skeleton_name}\n" for iface in api.interfaces)
    names = ", ".join(f'"{i.skeleton_name}"' for i in api.interfaces)
    lines.append(f"\n__all__ = [{names}]\n")
    return "".join(lines)


def expected_files() -> Dict[Path, str]:
    files: Dict[Path, str] = {}
    for api in all_apis():
        module = f"smapi.interface.{api.name}"
        package = SKELETON_DIR / api.name
        files[package / "__init__.py"] = api_package_source(api, module)
        for iface in api.interfaces:
            files[package / f"{iface.name.lower()}.py"] = interface_module_source(api, iface, module)
    return files


def stale_files() -> List[Path]:
    """Generated files no definition produces any more (whole-API modules of older versions, removed interfaces)."""
    wanted = set(expected_files())
    found = set(SKELETON_DIR.glob("*.py")) | set(SKELETON_DIR.glob("*/*.py"))
    return sorted(p for p in found - wanted if p.name != "__init__.py" or p.parent != SKELETON_DIR)


def main(argv: List[str]) -> int:
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    for path in stale_files():
        path.unlink()
        print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
