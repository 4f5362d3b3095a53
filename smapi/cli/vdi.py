"""VDI commands: vdi-create, vdi-list, vdi-stat, vdi-snapshot, vdi-clone, vdi-compose, vdi-resize,
vdi-destroy, vdi-copy.

`--sr` and VDI arguments take a UUID, a unique UUID prefix or a name (`smapi.cli.select`). Commands that make a
VDI print only its UUID (`V=$(smapi vdi-create ...)`); `--json` prints the whole record.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import click

from smapi.cli.common import (
    busy,
    emit,
    human_size,
    json_option,
    parse_size,
    sr_option,
    table,
    target_options,
    vdi_argument,
    vdi_rows,
)
from smapi.cli.select import complete_sr, match, select_sr, select_vdi, sr_candidates_local


def _print_new(record: Dict[str, Any], as_json: bool) -> None:
    emit(record, as_json, lambda v: click.echo(v["vdi"]))


@click.command("vdi-create")
@target_options
@sr_option
@click.option("--size", required=True, help="virtual size, e.g. 10G")
@click.option("--name", "name_label", default="", help="name label")
@click.option("--description", default="", help="name description")
@click.option("--format", "fmt", type=click.Choice(["vhd", "raw"]), default="vhd", show_default=True,
              help="vhd: thin, with snapshots sharing blocks; raw: the whole size allocated, a plain disk image")
@json_option
def vdi_create(driver: Optional[str], url: Optional[str], sr: str, size: str, name_label: str, description: str,
               fmt: str, as_json: bool) -> None:
    """Create a VDI; prints its UUID."""
    s = select_sr(driver, url, sr)
    info: Dict[str, Any] = {"virtual_size": parse_size(size), "name_label": name_label,
                            "name_description": description}
    if fmt == "raw":
        info["sm_config"] = {"type": "raw"}
    _print_new(s.target.call("VDI.create", dbg="vdi-create", sr=s.sr, vdi_info=info), as_json)


@click.command("vdi-list")
@target_options
@sr_option
@json_option
def vdi_list(driver: Optional[str], url: Optional[str], sr: str, as_json: bool) -> None:
    """List the VDIs of an SR."""
    s = select_sr(driver, url, sr)
    emit(s.target.call("SR.scan", dbg="vdi-list", sr=s.sr), as_json, lambda v: click.echo(vdi_rows(v)))


def _value(key: str, value: Any) -> str:
    if key in ("virtual_size", "physical_utilisation") and isinstance(value, int):
        return f"{value} ({human_size(value)})"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
    return str(value) if value not in ("", None) else "-"


@click.command("vdi-stat")
@target_options
@sr_option
@json_option
@vdi_argument()
def vdi_stat(driver: Optional[str], url: Optional[str], sr: str, as_json: bool, vdi: str) -> None:
    """Show everything known about a VDI."""
    s = select_sr(driver, url, sr)
    info = s.target.call("VDI.stat", dbg="vdi-stat", sr=s.sr, vdi=select_vdi(s, vdi))
    emit(info, as_json, lambda v: click.echo(table([[k, _value(k, v[k])] for k in sorted(v)], ["FIELD", "VALUE"])))


def _copy_verb(verb: str, driver: Optional[str], url: Optional[str], sr: str, vdi: str, name: Optional[str],
               as_json: bool) -> None:
    s = select_sr(driver, url, sr)
    uuid = select_vdi(s, vdi)
    info = s.target.call("VDI.stat", dbg=verb, sr=s.sr, vdi=uuid)
    if name is not None:
        info = {**info, "name_label": name}
    # a snapshot keeps the content it was taken with; a clone is for writing, even a clone of a snapshot
    info = {**info, "read_only": verb == "VDI.snapshot"}
    _print_new(s.target.call(verb, dbg=verb, sr=s.sr, vdi_info=info), as_json)


@click.command("vdi-snapshot")
@target_options
@sr_option
@click.option("--name", default=None, help="name of the snapshot (default: the VDI's)")
@json_option
@vdi_argument()
def vdi_snapshot(driver: Optional[str], url: Optional[str], sr: str, name: Optional[str], as_json: bool,
                 vdi: str) -> None:
    """Snapshot a VDI (a read-only copy of its current content); prints the snapshot's UUID."""
    _copy_verb("VDI.snapshot", driver, url, sr, vdi, name, as_json)


@click.command("vdi-clone")
@target_options
@sr_option
@click.option("--name", default=None, help="name of the clone (default: the VDI's)")
@json_option
@vdi_argument()
def vdi_clone(driver: Optional[str], url: Optional[str], sr: str, name: Optional[str], as_json: bool,
              vdi: str) -> None:
    """Clone a VDI (a writable copy sharing its current content); prints the clone's UUID."""
    _copy_verb("VDI.clone", driver, url, sr, vdi, name, as_json)


@click.command("vdi-compose")
@target_options
@sr_option
@vdi_argument("vdi1")
@vdi_argument("vdi2")
def vdi_compose(driver: Optional[str], url: Optional[str], sr: str, vdi1: str, vdi2: str) -> None:
    """Layer VDI2's own updates onto VDI1's content (VDI2 is modified)."""
    s = select_sr(driver, url, sr)
    s.target.call("VDI.compose", dbg="vdi-compose", sr=s.sr, vdi1=select_vdi(s, vdi1), vdi2=select_vdi(s, vdi2))


@click.command("vdi-resize")
@target_options
@sr_option
@click.option("--size", required=True, help="new virtual size, e.g. 20G (grow only)")
@json_option
@vdi_argument()
def vdi_resize(driver: Optional[str], url: Optional[str], sr: str, size: str, as_json: bool, vdi: str) -> None:
    """Grow a VDI."""
    s = select_sr(driver, url, sr)
    uuid = select_vdi(s, vdi)
    new_size = s.target.call("VDI.resize", dbg="vdi-resize", sr=s.sr, vdi=uuid, new_size=parse_size(size))
    emit({"vdi": uuid, "virtual_size": new_size} if as_json else new_size, as_json,
         lambda n: click.echo(f"{uuid} is now {n} bytes ({human_size(n)})"))


@click.command("vdi-destroy")
@target_options
@sr_option
@vdi_argument()
def vdi_destroy(driver: Optional[str], url: Optional[str], sr: str, vdi: str) -> None:
    """Destroy a VDI."""
    s = select_sr(driver, url, sr)
    s.target.call("VDI.destroy", dbg="vdi-destroy", sr=s.sr, vdi=select_vdi(s, vdi))


@click.command("vdi-copy")
@target_options
@sr_option
@click.option("--dest", required=True, shell_complete=complete_sr,
              help="destination SR (attached on the same host): UUID, prefix or name")
@click.option("--remote", "remote_url", default="", help="URL of a remote smapi endpoint holding --dest")
@click.option("--progress/--no-progress", default=True, help="show that it is working (on a terminal)")
@json_option
@vdi_argument()
def vdi_copy(driver: Optional[str], url: Optional[str], sr: str, dest: str, remote_url: str, progress: bool,
             as_json: bool, vdi: str) -> None:
    """Copy a VDI into another SR; prints the new VDI's UUID."""
    s = select_sr(driver, url, sr)
    dest_uuid = dest if (remote_url or url) else (match(dest, sr_candidates_local(), "sr") or dest)
    with busy(f"copying {vdi}", progress):
        new = s.target.call("VDI.copy", dbg="vdi-copy", sr=s.sr, vdi=select_vdi(s, vdi), url=remote_url,
                            dest=dest_uuid)
    emit({"vdi": new, "sr": dest_uuid} if as_json else new, as_json, click.echo)


COMMANDS = (vdi_create, vdi_list, vdi_stat, vdi_snapshot, vdi_clone, vdi_compose, vdi_resize, vdi_destroy, vdi_copy)
