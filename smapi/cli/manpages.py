"""Man pages made from the commands' own click help: smapi(1) and one smapi-COMMAND(1) page per command.

Generated from the same objects that answer `-h`, so a page cannot drift from the command; no build-time
dependency (click-man would add one, and reads the same help records). `smapi man-pages DIR` writes them;
`make man` or a package build can run it.
"""

from __future__ import annotations

import datetime
import os
from typing import Iterator, List, Tuple

import click


def _roff(text: str) -> str:
    """Text made safe for roff: backslashes doubled, a leading dot or quote escaped."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def walk(group: click.Group, ctx: click.Context) -> Iterator[Tuple[str, click.Command, click.Context]]:
    """Every command under `group`, with its full name (`smapi vhd info`) and a context to render its help."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        # the command's own settings (-h): click caches the help option it builds from the first context it sees
        sub = click.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
        yield sub.command_path, cmd, sub
        if isinstance(cmd, click.Group):
            yield from walk(cmd, sub)


def page(path: str, cmd: click.Command, ctx: click.Context, see_also: List[str], version: str) -> str:
    title = path.replace(" ", "-")
    date = datetime.date.today().isoformat()
    out = [f'.TH "{title.upper()}" "1" "{date}" "smapi {version}" "smapi manual"',
           ".SH NAME", f"{title} \\- {_roff(cmd.get_short_help_str(limit=200))}",
           ".SH SYNOPSIS", f".B {path}", _roff(" ".join(cmd.collect_usage_pieces(ctx)))]
    if cmd.help:
        out += [".SH DESCRIPTION", _roff(click.unstyle(cmd.help))]
    records = [r for r in (p.get_help_record(ctx) for p in cmd.get_params(ctx)) if r]
    if records:
        out.append(".SH OPTIONS")
        for term, text in records:
            out += [".TP", f"\\fB{_roff(term)}\\fR", _roff(text)]
    if isinstance(cmd, click.Group):
        out.append(".SH COMMANDS")
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += [".TP", f"\\fB{name}\\fR", _roff(sub.get_short_help_str(limit=120))]
    if see_also:
        out += [".SH SEE ALSO", ", ".join(f"\\fB{s}\\fR(1)" for s in see_also)]
    return "\n".join(out) + "\n"


def write_man_pages(root: click.Group, directory: str, version: str) -> List[str]:
    """Write smapi.1 and smapi-COMMAND.1 into `directory`; returns the file names."""
    os.makedirs(directory, exist_ok=True)
    ctx = click.Context(root, info_name="smapi", **root.context_settings)
    commands = list(walk(root, ctx))
    pages: List[Tuple[str, click.Command, click.Context, List[str]]] = [
        ("smapi", root, ctx, [p.replace(" ", "-") for p, _, _ in commands if p.count(" ") == 1])]
    pages += [(p, c, x, ["smapi"]) for p, c, x in commands]
    written = []
    for path, cmd, cctx, see in pages:
        name = path.replace(" ", "-") + ".1"
        with open(os.path.join(directory, name), "w") as f:
            f.write(page(path, cmd, cctx, see, version))
        written.append(name)
    return written
