"""SR commands: sr-create, sr-attach, sr-detach, sr-destroy, sr-scan, sr-stat, sr-probe, sr-gc, sr-list."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any, Optional, Sequence

import click

from smapi.cli.common import emit, human_size, json_option, parse_config, table, target, target_options, vdi_rows

CONFIG_HELP = "device_config entry KEY=VALUE (repeatable), e.g. -c path=/srv/sr"


def config_option(fn: Any) -> Any:
    return click.option("--config", "-c", "config", multiple=True, help=CONFIG_HELP)(fn)


@click.command("sr-create")
@target_options
@config_option
@click.option("--sr", "sr_uuid", help="uuid for the new SR (default: a fresh one)")
@click.option("--size", "physical_size", default="0", help="requested maximum size (e.g. 100G; 0: no limit)")
@click.option("--name", default="", help="name label")
@click.option("--no-attach", is_flag=True, help="only create; do not attach on this host")
@json_option
def sr_create(driver: Optional[str], url: Optional[str], config: Sequence[str], sr_uuid: Optional[str],
              physical_size: str, name: str, no_attach: bool, as_json: bool) -> None:
    """Create an SR (and attach it on this host)."""
    from smapi.cli.common import parse_size

    t = target(driver, url)
    sr = sr_uuid or str(uuidlib.uuid4())
    device_config = parse_config(config)
    t.call("SR.create", dbg="sr-create", sr=sr, device_config=device_config, physical_size=parse_size(physical_size))
    if not no_attach:
        t.call("SR.attach", dbg="sr-create", sr=sr, device_config=device_config)
        if name:
            t.call("SR.set_name_label", dbg="sr-create", sr=sr, new_name_label=name)
    emit({"sr": sr, "attached": not no_attach}, as_json, lambda v: click.echo(sr))


@click.command("sr-attach")
@target_options
@config_option
@click.argument("sr")
def sr_attach(driver: Optional[str], url: Optional[str], config: Sequence[str], sr: str) -> None:
    """Attach SR on this host (idempotent)."""
    target(driver, url).call("SR.attach", dbg="sr-attach", sr=sr, device_config=parse_config(config))


@click.command("sr-detach")
@target_options
@click.argument("sr")
def sr_detach(driver: Optional[str], url: Optional[str], sr: str) -> None:
    """Detach SR from this host, deactivating and detaching its VDIs first."""
    target(driver, url).call("SR.detach", dbg="sr-detach", sr=sr)


@click.command("sr-destroy")
@target_options
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.argument("sr")
def sr_destroy(driver: Optional[str], url: Optional[str], yes: bool, sr: str) -> None:
    """Destroy SR and everything in it."""
    if not yes:
        click.confirm(f"Destroy SR {sr} and all its VDIs?", abort=True)
    target(driver, url).call("SR.destroy", dbg="sr-destroy", sr=sr)


@click.command("sr-scan")
@target_options
@json_option
@click.argument("sr")
def sr_scan(driver: Optional[str], url: Optional[str], as_json: bool, sr: str) -> None:
    """Rescan SR and list its VDIs."""
    vdis = target(driver, url).call("SR.scan", dbg="sr-scan", sr=sr)
    emit(vdis, as_json, lambda v: click.echo(vdi_rows(v)))


@click.command("sr-stat")
@target_options
@json_option
@click.argument("sr")
def sr_stat(driver: Optional[str], url: Optional[str], as_json: bool, sr: str) -> None:
    """Show SR size, free space and health."""
    info = target(driver, url).call("SR.stat", dbg="sr-stat", sr=sr)

    def human(i: Any) -> None:
        health = i["health"] if isinstance(i["health"], str) else i["health"][0]
        click.echo(table([[sr, i["name_label"], human_size(i["total_space"]), human_size(i["free_space"]), health]],
                         ["SR", "NAME", "TOTAL", "FREE", "HEALTH"]))

    emit(info, as_json, human)


@click.command("sr-probe")
@target_options
@config_option
@json_option
def sr_probe(driver: Optional[str], url: Optional[str], config: Sequence[str], as_json: bool) -> None:
    """Look at the storage a device_config reaches and list the SRs found."""
    result = target(driver, url).call("SR.probe", dbg="sr-probe", device_config=parse_config(config), sm_config={})

    def human(r: Any) -> None:
        if r[0] == "Raw":
            click.echo(r[1])
            return
        rows = [[(p.get("sr") or {}).get("sr_uuid") or "-", "yes" if p["complete"] else "no",
                 " ".join(f"{k}={v}" for k, v in sorted(p["configuration"].items()))] for p in r[1]]
        click.echo(table(rows, ["SR", "COMPLETE", "CONFIGURATION"]))

    emit(result, as_json, human)


@click.command("sr-list")
@target_options
@json_option
def sr_list(driver: Optional[str], url: Optional[str], as_json: bool) -> None:
    """List the SRs attached on this host."""
    srs = target(driver, url).call("SR.ls", dbg="sr-list")
    emit(srs, as_json, lambda v: click.echo("\n".join(v)))


@click.command("sr-gc")
@click.option("--driver", "-d", required=True, help="the driver of the SR (a local driver: GC runs here)")
@click.argument("sr")
def sr_gc(driver: str, sr: str) -> None:
    """Garbage-collect SR now: delete unused base copies and coalesce single-child chains."""
    from smapi.cli.target import LocalTarget
    from smapi.core.driver import Driver

    local = LocalTarget(driver)
    if type(local.driver).gc is Driver.gc:
        raise click.UsageError(f"driver {local.driver.name} has no garbage collector")
    result = local.driver.gc(sr)
    if result is not None:
        click.echo(result if isinstance(result, str) else repr(result))


COMMANDS = (sr_create, sr_attach, sr_detach, sr_destroy, sr_scan, sr_stat, sr_probe, sr_list, sr_gc)
