"""VDI commands: vdi-create, vdi-list, vdi-stat, vdi-snapshot, vdi-clone, vdi-compose, vdi-resize,
vdi-destroy, vdi-copy."""

from __future__ import annotations

from typing import Any, Optional

import click

from smapi.cli.common import emit, human_size, json_option, parse_size, target, target_options, vdi_rows


def sr_option(fn: Any) -> Any:
    return click.option("--sr", required=True, help="the SR (uuid)")(fn)


def _show_one(v: Any) -> None:
    click.echo(f"{v['vdi']}  {v['name_label'] or '(no name)'}  {human_size(v['virtual_size'])}")


@click.command("vdi-create")
@target_options
@sr_option
@click.option("--size", required=True, help="virtual size, e.g. 10G")
@click.option("--name", "name_label", default="", help="name label")
@click.option("--description", default="", help="name description")
@json_option
def vdi_create(driver: Optional[str], url: Optional[str], sr: str, size: str, name_label: str, description: str,
               as_json: bool) -> None:
    """Create a VDI and print it."""
    info = {"virtual_size": parse_size(size), "name_label": name_label, "name_description": description}
    emit(target(driver, url).call("VDI.create", dbg="vdi-create", sr=sr, vdi_info=info), as_json, _show_one)


@click.command("vdi-list")
@target_options
@sr_option
@json_option
def vdi_list(driver: Optional[str], url: Optional[str], sr: str, as_json: bool) -> None:
    """List the VDIs of an SR."""
    emit(target(driver, url).call("SR.scan", dbg="vdi-list", sr=sr), as_json, lambda v: click.echo(vdi_rows(v)))


@click.command("vdi-stat")
@target_options
@sr_option
@json_option
@click.argument("vdi")
def vdi_stat(driver: Optional[str], url: Optional[str], sr: str, as_json: bool, vdi: str) -> None:
    """Show everything known about a VDI."""
    info = target(driver, url).call("VDI.stat", dbg="vdi-stat", sr=sr, vdi=vdi)

    def human(v: Any) -> None:
        for key in sorted(v):
            value = v[key]
            if key in ("virtual_size", "physical_utilisation"):
                value = f"{value} ({human_size(value)})"
            click.echo(f"{key:22s}{value}")

    emit(info, as_json, human)


def _copy_verb(verb: str, driver: Optional[str], url: Optional[str], sr: str, vdi: str, name: Optional[str],
               as_json: bool) -> None:
    t = target(driver, url)
    info = t.call("VDI.stat", dbg=verb, sr=sr, vdi=vdi)
    if name is not None:
        info = {**info, "name_label": name}
    emit(t.call(verb, dbg=verb, sr=sr, vdi_info=info), as_json, _show_one)


@click.command("vdi-snapshot")
@target_options
@sr_option
@click.option("--name", default=None, help="name of the snapshot (default: the VDI's)")
@json_option
@click.argument("vdi")
def vdi_snapshot(driver: Optional[str], url: Optional[str], sr: str, name: Optional[str], as_json: bool,
                 vdi: str) -> None:
    """Snapshot a VDI (read-only copy of its current content); prints the snapshot."""
    _copy_verb("VDI.snapshot", driver, url, sr, vdi, name, as_json)


@click.command("vdi-clone")
@target_options
@sr_option
@click.option("--name", default=None, help="name of the clone (default: the VDI's)")
@json_option
@click.argument("vdi")
def vdi_clone(driver: Optional[str], url: Optional[str], sr: str, name: Optional[str], as_json: bool,
              vdi: str) -> None:
    """Clone a VDI (writable copy sharing its current content); prints the clone."""
    _copy_verb("VDI.clone", driver, url, sr, vdi, name, as_json)


@click.command("vdi-compose")
@target_options
@sr_option
@click.argument("vdi1")
@click.argument("vdi2")
def vdi_compose(driver: Optional[str], url: Optional[str], sr: str, vdi1: str, vdi2: str) -> None:
    """Layer VDI2's own updates onto VDI1's content (VDI2 is modified)."""
    target(driver, url).call("VDI.compose", dbg="vdi-compose", sr=sr, vdi1=vdi1, vdi2=vdi2)


@click.command("vdi-resize")
@target_options
@sr_option
@click.option("--size", required=True, help="new virtual size, e.g. 20G (grow only)")
@json_option
@click.argument("vdi")
def vdi_resize(driver: Optional[str], url: Optional[str], sr: str, size: str, as_json: bool, vdi: str) -> None:
    """Grow a VDI."""
    new_size = target(driver, url).call("VDI.resize", dbg="vdi-resize", sr=sr, vdi=vdi, new_size=parse_size(size))
    emit(new_size, as_json, lambda n: click.echo(f"{vdi} is now {n} bytes ({human_size(n)})"))


@click.command("vdi-destroy")
@target_options
@sr_option
@click.argument("vdi")
def vdi_destroy(driver: Optional[str], url: Optional[str], sr: str, vdi: str) -> None:
    """Destroy a VDI."""
    target(driver, url).call("VDI.destroy", dbg="vdi-destroy", sr=sr, vdi=vdi)


@click.command("vdi-copy")
@target_options
@sr_option
@click.option("--dest", required=True, help="destination SR (attached on the same host)")
@click.option("--remote", "remote_url", default="", help="URL of a remote smapi endpoint holding --dest")
@json_option
@click.argument("vdi")
def vdi_copy(driver: Optional[str], url: Optional[str], sr: str, dest: str, remote_url: str, as_json: bool,
             vdi: str) -> None:
    """Copy a VDI into another SR; prints the new VDI."""
    new = target(driver, url).call("VDI.copy", dbg="vdi-copy", sr=sr, vdi=vdi, url=remote_url, dest=dest)
    emit(new, as_json, click.echo)


COMMANDS = (vdi_create, vdi_list, vdi_stat, vdi_snapshot, vdi_clone, vdi_compose, vdi_resize, vdi_destroy, vdi_copy)
