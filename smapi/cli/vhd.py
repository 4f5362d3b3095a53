"""`smapi vhd ...`: VHD images for people (info, create, snapshot, coalesce, resize, check, repair, import, export).

Everything goes through the one facade, :mod:`smapi.vhd`; ``export --format vhd`` through its VHD view.

Errors print one line and exit 1; commands that print data take ``--json``.
"""

import json
import os
import re
import sys
from typing import Any, Dict, Optional

import click

from smapi import vhd as V
from smapi.cli.common import busy

progress_option = click.option("--progress/--no-progress", default=True,
                               help="show that it is working (on a terminal only)")

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``10G``, ``512M``, ``1.5T``, ``4096``, ``2GiB`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise click.BadParameter(f"{text!r} is not a size (examples: 4096, 512M, 10G)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


class Size(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> int:
        return value if isinstance(value, int) else parse_size(str(value))


SIZE = Size()


class VhdGroup(click.Group):
    """One-line reason and exit status 1 for every engine or OS error; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except V.VhdError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except OSError as e:
            click.echo(f"error: {e.filename or ''}: {e.strerror or e}".replace(": : ", ": "), err=True)
            ctx.exit(1)


def _emit(data: Dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    width = max(map(len, data)) if data else 0
    for k, v in data.items():
        click.echo(f"{k:<{width}}  {v}")


@click.group(cls=VhdGroup)
def vhd() -> None:
    """Inspect and manipulate VHD images (fixed, dynamic, differencing)."""


@vhd.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def info(image: str, as_json: bool) -> None:
    """Show an image's metadata."""
    d = V.info(image).to_dict()
    d.pop("error", None)
    _emit(d, as_json)


@vhd.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("size", type=SIZE)
@click.option("--fixed", is_flag=True, help="fixed (preallocated) instead of dynamic")
@click.option("--block-size", type=SIZE, default=str(V.DEFAULT_BLOCK_SIZE), show_default=True,
              help="dynamic block size (4K .. 2M)")
@click.option("--max-size", type=SIZE, default=None, help="reserve BAT room so a resize up to this is instant")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def create(image: str, size: int, fixed: bool, block_size: int, max_size: Optional[int], as_json: bool) -> None:
    """Create IMAGE of SIZE, for example 10G."""
    if fixed:
        inf = V.create_fixed(image, size)
    else:
        inf = V.create_dynamic(image, size, block_size=block_size, max_size=max_size)
    _emit({"name": inf.name, "uuid": inf.uuid, "virtual_size": inf.virtual_size}, as_json)


@vhd.command()
@click.argument("parent", type=click.Path(dir_okay=False, exists=True))
@click.argument("child", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def snapshot(parent: str, child: str, as_json: bool) -> None:
    """Create CHILD, an empty differencing image over PARENT (which must sit in CHILD's directory tree)."""
    inf = V.snapshot(parent, child)
    _emit({"name": inf.name, "uuid": inf.uuid, "parent_uuid": inf.parent_uuid, "parent_name": inf.parent_name},
          as_json)


@vhd.command()
@click.argument("child", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def coalesce(child: str, as_json: bool) -> None:
    """Copy CHILD's data into its parent (CHILD itself is left as it is)."""
    n = V.coalesce(child)
    _emit({"coalesced_sectors": n}, as_json)


@vhd.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("size", type=SIZE)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def resize(image: str, size: int, as_json: bool) -> None:
    """Grow IMAGE to SIZE (shrinking is refused)."""
    _emit({"virtual_size": V.resize(image, size)}, as_json)


@vhd.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.option("--no-parents", is_flag=True, help="do not open the parent chain")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def check(image: str, no_parents: bool, as_json: bool) -> None:
    """Verify every structural invariant; exit 1 if any is broken."""
    rep = V.check(image, check_parents=not no_parents)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2, sort_keys=True))
    else:
        for w in rep.warnings:
            click.echo(f"warning: {w}")
        for e in rep.errors:
            click.echo(f"error: {e}")
        click.echo(f"{image} is valid" if rep.ok else f"{image} is invalid ({len(rep.errors)} error(s))")
    if not rep.ok:
        sys.exit(1)


@vhd.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def repair(image: str, as_json: bool) -> None:
    """Restore footers and trim a torn tail."""
    actions = V.repair(image)
    if as_json:
        click.echo(json.dumps({"actions": actions}))
    else:
        for a in actions or ["nothing to repair"]:
            click.echo(a)


@vhd.command("import")
@click.argument("raw", type=click.Path(dir_okay=False, exists=True))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--fixed", is_flag=True, help="write a fixed VHD")
@progress_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def import_(raw: str, image: str, fixed: bool, progress: bool, as_json: bool) -> None:
    """Convert the raw disk RAW into the new VHD IMAGE (zero blocks stay unallocated)."""
    with busy(f"importing {raw}", progress):
        inf = V.import_raw(raw, image, fixed=fixed)
    _emit({"name": inf.name, "virtual_size": inf.virtual_size, "allocated_blocks": inf.allocated_blocks}, as_json)


@vhd.command("export")
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["raw", "vhd"]), default="raw", show_default=True,
              help="raw: a sparse raw file; vhd: one self-contained dynamic VHD (the chain flattened, the same "
                   "bytes a Transfer .vhd download gives)")
@progress_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def export(image: str, output: str, fmt: str, progress: bool, as_json: bool) -> None:
    """Write IMAGE's virtual disk (through its chain) to OUTPUT."""
    if fmt == "vhd":
        with busy(f"exporting {image}", progress):
            inf = V.clone(image, output)
        _emit({"vhd": output, "virtual_size": inf.virtual_size, "allocated_blocks": inf.allocated_blocks,
               "size": os.path.getsize(output)}, as_json)
        return
    with busy(f"exporting {image}", progress):
        n = V.export_raw(image, output)
    _emit({"raw": output, "bytes_written": n, "size": os.path.getsize(output)}, as_json)


@vhd.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def scan(directory: str, as_json: bool) -> None:
    """Header-only scan of every *.vhd in DIRECTORY."""
    res = [i.to_dict() for i in V.scan_headers(directory)]
    if as_json:
        click.echo(json.dumps(res, indent=2, sort_keys=True))
        return
    for i in res:
        name = os.path.basename(i["name"])
        if i["error"]:
            click.echo(f"vhd={name} scan-error='{i['error']}'")
        else:
            click.echo(f"vhd={name} capacity={i['virtual_size']} size={i['physical_size']} "
                       f"hidden={int(i['hidden'])} parent={i['parent_name'] or 'none'}")


@vhd.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("value", type=click.Choice(["on", "off"]))
def hidden(image: str, value: str) -> None:
    """Set (on) or clear (off) the blktap hidden flag."""
    V.set_hidden(image, value == "on")


if __name__ == "__main__":
    vhd()
