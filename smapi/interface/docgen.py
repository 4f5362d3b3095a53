"""Generate the interface reference (docs/interface.md) from the definitions.

`tests/interface/test_generated.py` fails when the checked-in file differs from this output; regenerate with
`python -m smapi.interface.docgen docs/interface.md` (or `make docs`).
"""

from __future__ import annotations

import sys
from typing import List

from smapi.interface.apis import all_apis
from smapi.interface.classic import CLASSIC_TYPES, COMMANDS
from smapi.interface.model import Api
from smapi.interface.types import Alias, Enum_, Record, Type, Variant, named_types


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def type_section(t: Type) -> List[str]:
    out = [f"#### `{t.name}`", ""]
    if isinstance(t, Record):
        out += [_cell(t.description), "", "| member | type | default | description |", "|---|---|---|---|"]
        for f in t.fields:
            default = "required" if f.required else ("`[]`/`{}`" if f.default_factory else f"`{f.make_default()!r}`")
            out.append(f"| `{f.name}` | `{_cell(f.type.doc())}` | {default} | {_cell(f.description)} |")
    elif isinstance(t, Variant):
        out += [_cell(t.description), "", "| constructor | payload | description |", "|---|---|---|"]
        for c in t.cases:
            payload = f"`{_cell(c.payload.doc())}`" if c.payload is not None else "-"
            out.append(f"| `{c.tag}` | {payload} | {_cell(c.description)} |")
    elif isinstance(t, Alias):
        out += [f"Alias of `{t.base.doc()}`. {_cell(t.description)}"]
    elif isinstance(t, Enum_):
        out += [f"One of {', '.join(f'`{v}`' for v in t.values)}. {_cell(t.description)}"]
    return out + [""]


def api_section(api: Api) -> List[str]:
    out = [f"## {api.title}", "", f"API name `{api.name}`, version {api.version}. Source: {api.source}.", "",
           api.description, ""]
    for iface in api.interfaces:
        out += [f"### {iface.name}", "", _cell(iface.description), "",
                f"Skeleton: `{iface.skeleton_name}` in `smapi.interface.skeletons.{api.name}`.", ""]
        for m in iface.methods:
            out += [f"#### `{iface.name}.{m.name}`", "", _cell(m.description), "",
                    "| argument | type | description |", "|---|---|---|"]
            for p in m.params:
                opt = " (optional)" if p.optional else ""
                out.append(f"| `{p.name}` | `{_cell(p.type.doc())}`{opt} | {_cell(p.description)} |")
            if m.result is not None:
                out.append(f"| **returns** `{m.result.name}` | `{_cell(m.result.type.doc())}` | "
                           f"{_cell(m.result.description)} |")
            if m.errors:
                out += ["", "Errors: " + ", ".join(f"`{e}`" for e in m.errors)]
            out.append("")
    out += [f"### Types of the {api.name} API", ""]
    for t in api.types():
        out += type_section(t)
    out += [f"### Errors of the {api.name} API", "", "| error | payload | classic code | description |",
            "|---|---|---|---|"]
    for e in api.errors:
        payload = e.payload_type.doc() if e.payload_type is not None else "-"
        code = "from the code name" if e.wire_name == "Backend_error" else str(e.classic_code)
        out.append(f"| `{e.wire_name}` | `{_cell(payload)}` | {code} | {_cell(e.description)} |")
    return out + [""]


def classic_section() -> List[str]:
    out = ["## Classic driver commands (SMAPIv1)", "",
           "`<Type>SR` executables take one XML-RPC methodCall in argv[1] whose struct carries `command`, "
           "positional `args` (strings) and `device_config`; they print one methodResponse (a result or a fault "
           "with a numeric code) and exit 0.", "",
           "| command | positional args | struct keys | result |", "|---|---|---|---|"]
    for c in COMMANDS.values():
        args = ", ".join(f"`{a.name}`: {a.type.doc()}" for a in c.args) or "-"
        keys = ", ".join(f"`{k}`" for k in c.keys) or "-"
        out.append(f"| `{c.name}` | {args} | {keys} | `{c.result.doc()}` |")
    out += ["", "### Classic result types", ""]
    for t in named_types(CLASSIC_TYPES):
        out += type_section(t)
    return out


def render() -> str:
    lines = ["# smapi interface reference", "",
             "Generated from `smapi/interface/` by `python -m smapi.interface.docgen`. Do not edit by hand.", ""]
    for api in all_apis():
        lines += api_section(api)
    lines += classic_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: List[str]) -> int:
    target = argv[0] if argv else "docs/interface.md"
    with open(target, "w") as f:
        f.write(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
