"""SR commands: sr-create, sr-introduce, sr-attach, sr-detach, sr-forget, sr-destroy, sr-scan, sr-stat, sr-probe,
sr-list, sr-gc.

Local commands record each SR in the host configuration (`smapi.cli.hostconfig`), so later commands find its
driver and `sr-attach --all` re-attaches it after a reboot.
"""

from __future__ import annotations

import uuid as uuidlib
from contextlib import suppress
from typing import Any, Dict, Optional, Sequence

import click

from smapi.cli import hostconfig
from smapi.cli.common import (
    busy,
    emit,
    human_size,
    json_option,
    parse_config,
    sr_argument,
    table,
    target,
    target_options,
    vdi_rows,
)
from smapi.cli.select import complete_sr, local_driver, select_sr
from smapi.interface.errors import SmapiError, Unimplemented

CONFIG_HELP = "device_config entry KEY=VALUE (repeatable), e.g. -c path=/srv/sr"


def config_option(fn: Any) -> Any:
    return click.option("--config", "-c", "config", multiple=True, help=CONFIG_HELP)(fn)


def _require_driver(driver: Optional[str], url: Optional[str], command: str) -> None:
    if not driver and not url:
        raise click.UsageError(f"{command} needs the driver: -d DRIVER (e.g. -d file), or --url of a server")


def _set_name(t: Any, sr: str, name: str, local: bool) -> None:
    try:
        t.call("SR.set_name_label", dbg="sr-name", sr=sr, new_name_label=name)
    except Unimplemented:
        if not local:
            raise
        click.echo(f"note: this driver keeps no SR names; the name is kept in {hostconfig.state_dir()} only",
                   err=True)
    if local:
        hostconfig.set_name(sr, name)


def _sr_record(t: Any, sr: str) -> Dict[str, Any]:
    record = hostconfig.get(sr)
    out: Dict[str, Any] = {"sr": sr, **(record.to_dict() if record else {})}
    # not attached (--no-attach), or a driver without SR.stat: the record is what there is
    with suppress(SmapiError):
        out.update(t.call("SR.stat", dbg="sr-record", sr=sr))
    return out


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
    """Create an SR, record it in this host's configuration and attach it; prints its UUID."""
    from smapi.cli.common import parse_size

    _require_driver(driver, url, "sr-create")
    t = target(driver, url)
    sr = sr_uuid or str(uuidlib.uuid4())
    device_config = parse_config(config)
    t.call("SR.create", dbg="sr-create", sr=sr, device_config=device_config, physical_size=parse_size(physical_size))
    _record_and_attach(t, driver, url, sr, device_config, name, no_attach)
    emit(_sr_record(t, sr) if as_json else sr, as_json, click.echo)


def _record_and_attach(t: Any, driver: Optional[str], url: Optional[str], sr: str, device_config: Dict[str, str],
                       name: str, no_attach: bool) -> None:
    local = not url and driver is not None
    if local:
        assert driver is not None
        hostconfig.put(hostconfig.SrRecord(sr, hostconfig.driver_spec_to_record(driver), device_config, name))
    if not no_attach:
        t.call("SR.attach", dbg="sr-attach", sr=sr, device_config=device_config)
        if name:
            _set_name(t, sr, name, local)


@click.command("sr-introduce")
@target_options
@config_option
@click.option("--name", default="", help="name label to set")
@click.option("--no-attach", is_flag=True, help="only record it; do not attach now")
@json_option
@click.argument("sr")
def sr_introduce(driver: Optional[str], url: Optional[str], config: Sequence[str], name: str, no_attach: bool,
                 as_json: bool, sr: str) -> None:
    """Add an existing SR (created elsewhere, or forgotten) to this host's configuration and attach it."""
    _require_driver(driver, url, "sr-introduce")
    t = target(driver, url)
    _record_and_attach(t, driver, url, sr, parse_config(config), name, no_attach)
    emit(_sr_record(t, sr) if as_json else sr, as_json, click.echo)


def _for_all(action: str, verb_call: Any) -> None:
    failed = 0
    for record in hostconfig.all_records():
        try:
            verb_call(record)
            click.echo(f"{action} {record.sr} ({record.name_label or 'no name'})")
        except (SmapiError, OSError, LookupError, ValueError) as e:
            failed += 1
            click.echo(f"error: {record.sr} ({record.name_label or 'no name'}): {e}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


@click.command("sr-attach")
@target_options
@config_option
@click.option("--all", "all_srs", is_flag=True, help="attach every SR of this host's configuration (at boot)")
@click.argument("sr", required=False, shell_complete=complete_sr)
def sr_attach(driver: Optional[str], url: Optional[str], config: Sequence[str], all_srs: bool,
              sr: Optional[str]) -> None:
    """Attach SR on this host (idempotent), with its recorded device_config; --all attaches every recorded SR."""
    from smapi.cli.target import make_target

    if all_srs:
        if sr or driver or url or config:
            raise click.UsageError("--all takes no SR, -d, -c or --url: it uses this host's configuration")
        _for_all("attached", lambda r: make_target(r.driver, None).call(
            "SR.attach", dbg="sr-attach", sr=r.sr, device_config=r.device_config))
        return
    if not sr:
        raise click.UsageError("give the SR to attach, or --all")
    extra = parse_config(config)
    try:
        s = select_sr(driver, url, sr)
    except SmapiError:
        if not (driver and extra):
            raise
        # an SR created elsewhere, given whole: attach it and record it, as sr-introduce does
        _record_and_attach(target(driver, url), driver, url, sr, extra, "", False)
        return
    device_config = {**(s.record.device_config if s.record else {}), **extra}
    if s.record is None and not device_config and not s.url:
        raise click.UsageError(f"SR {s.sr} is not in this host's configuration: give its device_config "
                               f"(-c KEY=VALUE), or add it with `smapi sr-introduce -d DRIVER -c ...`")
    s.target.call("SR.attach", dbg="sr-attach", sr=s.sr, device_config=device_config)
    if s.record is not None and extra:
        s.record.device_config = device_config
        hostconfig.put(s.record)


@click.command("sr-detach")
@target_options
@click.option("--all", "all_srs", is_flag=True, help="detach every SR of this host's configuration")
@click.argument("sr", required=False, shell_complete=complete_sr)
def sr_detach(driver: Optional[str], url: Optional[str], all_srs: bool, sr: Optional[str]) -> None:
    """Detach SR from this host, deactivating and detaching its VDIs first (it stays in the configuration)."""
    from smapi.cli.target import make_target

    if all_srs:
        if sr or driver or url:
            raise click.UsageError("--all takes no SR, -d or --url: it uses this host's configuration")
        _for_all("detached", lambda r: make_target(r.driver, None).call("SR.detach", dbg="sr-detach", sr=r.sr))
        return
    if not sr:
        raise click.UsageError("give the SR to detach, or --all")
    s = select_sr(driver, url, sr)
    s.target.call("SR.detach", dbg="sr-detach", sr=s.sr)


@click.command("sr-forget")
@target_options
@click.option("--keep-attached", is_flag=True, help="only drop the record; leave the SR attached until reboot")
@sr_argument
def sr_forget(driver: Optional[str], url: Optional[str], keep_attached: bool, sr: str) -> None:
    """Detach SR and remove it from this host's configuration; its content stays (sr-introduce brings it back)."""
    s = select_sr(driver, None, sr)
    if not keep_attached:
        s.target.call("SR.detach", dbg="sr-forget", sr=s.sr)
    if not hostconfig.remove(s.sr):
        raise click.ClickException(f"SR {s.sr} was not in this host's configuration")


@click.command("sr-destroy")
@target_options
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@sr_argument
def sr_destroy(driver: Optional[str], url: Optional[str], yes: bool, sr: str) -> None:
    """Destroy SR and everything in it, and remove it from this host's configuration."""
    s = select_sr(driver, url, sr)
    if not yes:
        click.confirm(f"Destroy SR {s.sr} and all its VDIs?", abort=True)
    s.target.call("SR.destroy", dbg="sr-destroy", sr=s.sr)
    if not s.url:
        hostconfig.remove(s.sr)


@click.command("sr-scan")
@target_options
@json_option
@sr_argument
def sr_scan(driver: Optional[str], url: Optional[str], as_json: bool, sr: str) -> None:
    """Rescan SR and list its VDIs."""
    s = select_sr(driver, url, sr)
    vdis = s.target.call("SR.scan", dbg="sr-scan", sr=s.sr)
    emit(vdis, as_json, lambda v: click.echo(vdi_rows(v)))


@click.command("sr-stat")
@target_options
@json_option
@sr_argument
def sr_stat(driver: Optional[str], url: Optional[str], as_json: bool, sr: str) -> None:
    """Show SR size, free space and health."""
    s = select_sr(driver, url, sr)
    info = s.target.call("SR.stat", dbg="sr-stat", sr=s.sr)

    def human(i: Any) -> None:
        health = i["health"] if isinstance(i["health"], str) else i["health"][0]
        rows = [["SR", s.sr], ["NAME", i["name_label"]], ["DESCRIPTION", i.get("name_description") or "-"],
                ["TYPE", s.driver or "-"], ["PATH", s.record.where() if s.record else "-"],
                ["TOTAL", human_size(i["total_space"])], ["FREE", human_size(i["free_space"])], ["HEALTH", health]]
        click.echo(table(rows, ["FIELD", "VALUE"]))

    emit(info, as_json, human)


@click.command("sr-probe")
@target_options
@config_option
@json_option
def sr_probe(driver: Optional[str], url: Optional[str], config: Sequence[str], as_json: bool) -> None:
    """Look at the storage a device_config reaches and list the SRs found."""
    _require_driver(driver, url, "sr-probe")
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
    """List this host's SRs (its configuration) with name, type, path and whether each is attached now."""
    from smapi.cli.select import sr_candidates_remote
    from smapi.sr.runstate import RunState

    if url:
        srs = [{"sr": u, "name_label": n} for u, n, _ in sr_candidates_remote(target(None, url))]
        emit(srs, as_json, lambda v: click.echo(table([[r["sr"], r["name_label"]] for r in v], ["SR", "NAME"])))
        return
    run = RunState()
    records = [r for r in hostconfig.all_records()
               if driver is None or r.driver == hostconfig.driver_spec_to_record(driver)]
    out = [{**r.to_dict(), "attached": run.attached(r.sr) is not None} for r in records]
    emit(out, as_json, lambda v: click.echo(table(
        [[r["sr"], r["name_label"] or "-", r["driver"], rec.where(), "yes" if r["attached"] else "no"]
         for r, rec in zip(v, records)], ["SR", "NAME", "TYPE", "PATH", "ATTACHED"])))


@click.command("sr-gc")
@target_options
@click.option("--progress/--no-progress", default=True, help="show that it is working (on a terminal)")
@json_option
@sr_argument
def sr_gc(driver: Optional[str], url: Optional[str], progress: bool, as_json: bool, sr: str) -> None:
    """Garbage-collect SR now: delete unused base copies and coalesce single-child chains (runs on this host)."""
    from smapi.cli.target import LocalTarget

    s = select_sr(driver, url, sr)
    local = LocalTarget(local_driver(s))
    gc = getattr(local.driver, "gc", None)
    if gc is None:
        raise click.UsageError(f"driver {local.driver.name} has no garbage collector")
    with busy("collecting garbage", progress):
        result = gc(s.sr)
    result = result if isinstance(result, dict) else {"result": result}
    emit(result, as_json, lambda r: click.echo(
        table([[k.replace("_", " "), v] for k, v in sorted(r.items())], ["WHAT", "COUNT"]) if r else "nothing to do"))


COMMANDS = (sr_create, sr_introduce, sr_attach, sr_detach, sr_forget, sr_destroy, sr_scan, sr_stat, sr_probe,
            sr_list, sr_gc)
