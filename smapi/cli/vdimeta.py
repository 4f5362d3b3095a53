"""Names, descriptions, sm_config and datapaths from the shell: sr-set-name, sr-set-description, vdi-set-name,
vdi-set-description, vdi-sm-config, vdi-attach, vdi-activate, vdi-deactivate, vdi-detach.

`vdi-attach` and `vdi-activate` print the NBD URI of the VDI's datapath (`nbd+unix:///EXPORT?socket=PATH`), for
`nbdinfo`, `nbdcopy`, `qemu-img` or `qemu-nbd`; `--json` prints the whole attach_info.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import click

from smapi.cli import hostconfig
from smapi.cli.common import emit, json_option, parse_config, sr_argument, sr_option, target_options, vdi_argument
from smapi.cli.select import select_sr, select_vdi
from smapi.interface.errors import Backend_error, Illegal_transition

DP_HELP = "datapath name (each user of a VDI attaches its own)"
DEFAULT_DP = "smapi-cli"


@click.command("sr-set-name")
@target_options
@sr_argument
@click.argument("name")
def sr_set_name(driver: Optional[str], url: Optional[str], sr: str, name: str) -> None:
    """Rename SR (its name selects it in every command)."""
    s = select_sr(driver, url, sr)
    s.target.call("SR.set_name_label", dbg="sr-set-name", sr=s.sr, new_name_label=name)
    if not s.url:
        hostconfig.set_name(s.sr, name)


@click.command("sr-set-description")
@target_options
@sr_argument
@click.argument("description")
def sr_set_description(driver: Optional[str], url: Optional[str], sr: str, description: str) -> None:
    """Set SR's description."""
    s = select_sr(driver, url, sr)
    s.target.call("SR.set_name_description", dbg="sr-set-description", sr=s.sr, new_name_description=description)


@click.command("vdi-set-name")
@target_options
@sr_option
@vdi_argument()
@click.argument("name")
def vdi_set_name(driver: Optional[str], url: Optional[str], sr: str, vdi: str, name: str) -> None:
    """Rename VDI."""
    s = select_sr(driver, url, sr)
    s.target.call("VDI.set_name_label", dbg="vdi-set-name", sr=s.sr, vdi=select_vdi(s, vdi), new_name_label=name)


@click.command("vdi-set-description")
@target_options
@sr_option
@vdi_argument()
@click.argument("description")
def vdi_set_description(driver: Optional[str], url: Optional[str], sr: str, vdi: str, description: str) -> None:
    """Set VDI's description."""
    s = select_sr(driver, url, sr)
    s.target.call("VDI.set_name_description", dbg="vdi-set-description", sr=s.sr, vdi=select_vdi(s, vdi),
                  new_name_description=description)


@click.command("vdi-sm-config")
@target_options
@sr_option
@click.option("--remove", "remove_keys", multiple=True, metavar="KEY", help="remove this key (repeatable)")
@json_option
@vdi_argument()
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]...")
def vdi_sm_config(driver: Optional[str], url: Optional[str], sr: str, remove_keys: Sequence[str], as_json: bool,
                  vdi: str, pairs: Sequence[str]) -> None:
    """Set KEY=VALUE pairs in VDI's sm_config, remove keys, then print the sm_config."""
    s = select_sr(driver, url, sr)
    uuid = select_vdi(s, vdi)
    for key, value in parse_config(pairs).items():
        s.target.call("VDI.add_to_sm_config", dbg="vdi-sm-config", sr=s.sr, vdi=uuid, key=key, value=value)
    for key in remove_keys:
        s.target.call("VDI.remove_from_sm_config", dbg="vdi-sm-config", sr=s.sr, vdi=uuid, key=key)
    config = s.target.call("VDI.stat", dbg="vdi-sm-config", sr=s.sr, vdi=uuid).get("sm_config", {})
    emit(config, as_json, lambda c: click.echo("\n".join(f"{k}={v}" for k, v in sorted(c.items()))))


def nbd_uri(params_nbd: str) -> str:
    """`nbd:unix:<socket>:exportname=<name>` (qemu's form, what attach_info carries) as a standard NBD URI."""
    head, sep, export = params_nbd.rpartition(":exportname=")
    socket = head[len("nbd:unix:"):] if sep and head.startswith("nbd:unix:") else ""
    if not socket:
        return params_nbd
    return f"nbd+unix:///{export}?socket={socket}"


def _uri(info: Dict[str, Any]) -> str:
    nbd = info.get("params_nbd")
    return nbd_uri(nbd) if nbd else str(info.get("params", ""))


def _datapath(verb: str, driver: Optional[str], url: Optional[str], sr: str, vdi: str, dp: str,
              **extra: Any) -> Tuple[Any, str, Any]:
    s = select_sr(driver, url, sr)
    uuid = select_vdi(s, vdi)
    result = s.target.call(verb, dbg=verb, dp=dp, sr=s.sr, vdi=uuid, **extra)
    return s, uuid, result


def _print_uri(s: Any, uuid: str, dp: str, info: Dict[str, Any], as_json: bool) -> None:
    emit({"vdi": uuid, "dp": dp, "uri": _uri(info), "attach_info": info}, as_json,
         lambda r: click.echo(r["uri"]))


@click.command("vdi-attach")
@target_options
@sr_option
@click.option("--dp", default=DEFAULT_DP, show_default=True, help=DP_HELP)
@click.option("--read-only", is_flag=True, help="attach for reading only")
@json_option
@vdi_argument()
def vdi_attach(driver: Optional[str], url: Optional[str], sr: str, dp: str, read_only: bool, as_json: bool,
               vdi: str) -> None:
    """Attach VDI on this host for datapath DP; prints the NBD URI it will be served at (after vdi-activate)."""
    s, uuid, info = _datapath("VDI.attach", driver, url, sr, vdi, dp, read_write=not read_only)
    _print_uri(s, uuid, dp, info, as_json)


@click.command("vdi-activate")
@target_options
@sr_option
@click.option("--dp", default=DEFAULT_DP, show_default=True, help=DP_HELP)
@json_option
@vdi_argument()
def vdi_activate(driver: Optional[str], url: Optional[str], sr: str, dp: str, as_json: bool, vdi: str) -> None:
    """Start serving an attached VDI; prints its NBD URI (e.g. `nbdinfo "$(smapi vdi-activate ...)"`)."""
    s, uuid, _ = _datapath("VDI.activate", driver, url, sr, vdi, dp)
    # activate returns nothing: the URI is the one attach gave, asked again (re-attaching keeps the mode); an RO
    # datapath, or a read-only VDI, refuses the RW form
    try:
        info = s.target.call("VDI.attach", dbg="vdi-activate", dp=dp, sr=s.sr, vdi=uuid, read_write=True)
    except (Illegal_transition, Backend_error):
        info = s.target.call("VDI.attach", dbg="vdi-activate", dp=dp, sr=s.sr, vdi=uuid, read_write=False)
    _print_uri(s, uuid, dp, info, as_json)


@click.command("vdi-deactivate")
@target_options
@sr_option
@click.option("--dp", default=DEFAULT_DP, show_default=True, help=DP_HELP)
@vdi_argument()
def vdi_deactivate(driver: Optional[str], url: Optional[str], sr: str, dp: str, vdi: str) -> None:
    """Stop serving VDI for DP (its NBD URI stops answering); it stays attached."""
    _datapath("VDI.deactivate", driver, url, sr, vdi, dp)


@click.command("vdi-detach")
@target_options
@sr_option
@click.option("--dp", default=DEFAULT_DP, show_default=True, help=DP_HELP)
@vdi_argument()
def vdi_detach(driver: Optional[str], url: Optional[str], sr: str, dp: str, vdi: str) -> None:
    """Detach VDI from DP on this host."""
    _datapath("VDI.detach", driver, url, sr, vdi, dp)


COMMANDS = (sr_set_name, sr_set_description, vdi_set_name, vdi_set_description, vdi_sm_config, vdi_attach,
            vdi_activate, vdi_deactivate, vdi_detach)
