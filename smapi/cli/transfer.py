"""`smapi transfer ...`: the Transfer API from the shell, and the host's toolstack HTTP endpoints.

Calls run the service in this process by default (exposures are separate server processes, so they outlive the
command); `--url` sends them to a running Transfer server instead (`smapi serve --api transfer --driver
smapi.transfer.driver:TransferDriver ...`).
"""

from __future__ import annotations

import xml.dom.minidom
from typing import Any, Dict, Optional

import click

from smapi.cli.common import URL_HELP, emit, json_option, serve_until_stopped
from smapi.cli.target import Target, make_target

TRANSFER_DRIVER = "smapi.transfer.driver:TransferDriver"


def _target(url: Optional[str]) -> Target:
    return make_target(None if url else TRANSFER_DRIVER, url, api="transfer")


def _call(url: Optional[str], verb: str, **args: Any) -> str:
    return _target(url).call(f"Transfer.{verb}", **{k: v for k, v in args.items() if v is not None})


def _record_dict(text: str) -> Dict[str, str]:
    root = xml.dom.minidom.parseString(text).documentElement
    return dict(root.attributes.items())


def _bool(flag: Optional[bool]) -> Optional[str]:
    return None if flag is None else ("true" if flag else "false")


url_option = click.option("--url", help=URL_HELP + " (default: the service in this process)")


@click.group("transfer")
def transfer() -> None:
    """Expose VDIs over HTTP, BITS or iSCSI (the Transfer API), and serve /export_raw_vdi, /import_raw_vdi."""


@transfer.command("expose")
@click.argument("mode", type=click.Choice(["http", "bits", "iscsi"]))
@click.argument("vdi")
@click.option("--network", default="management", show_default=True, help="network_uuid")
@click.option("--ip", help="listen on this address of the host (network_mode=manual); default loopback")
@click.option("--mask", default="255.255.255.255", show_default=True, help="network_mask with --ip")
@click.option("--gateway", help="network_gateway with --ip (default: the --ip itself)")
@click.option("--listen-all", is_flag=True, help="allow --ip 0.0.0.0 or :: (every interface of the host)")
@click.option("--port", help="network_port (0: any free port)")
@click.option("--read-only/--read-write", default=None, help="read_only")
@click.option("--ssl/--no-ssl", default=None, help="use_ssl (self-signed certificate in the record)")
@click.option("--timeout", "timeout_minutes", help="unexpose this many minutes after the last connection")
@click.option("--get-log/--no-get-log", default=None, help="keep the server log at unexpose")
@url_option
@json_option
def expose(mode: str, vdi: str, network: str, ip: Optional[str], mask: str, gateway: Optional[str],
           listen_all: bool, port: Optional[str], read_only: Optional[bool], ssl: Optional[bool],
           timeout_minutes: Optional[str], get_log: Optional[bool], url: Optional[str], as_json: bool) -> None:
    """Expose VDI; prints the record handle (with --json, the whole record)."""
    refuse_wildcard(ip, listen_all, "--ip")
    manual = {"network_mode": "manual", "network_ip": ip, "network_mask": mask,
              "network_gateway": gateway or ip} if ip else {}
    handle = _call(url, "expose", transfer_mode=mode, vdi_uuid=vdi, network_uuid=network, network_port=port,
                   read_only=_bool(read_only), use_ssl=_bool(ssl), timeout_minutes=timeout_minutes,
                   get_log=_bool(get_log), **manual)
    if as_json:
        emit(_record_dict(_call(url, "get_record", record_handle=handle)), True)
    else:
        click.echo(handle)


@transfer.command("get-record")
@click.option("--handle", "record_handle", help="the record handle expose returned")
@click.option("--vdi", "vdi_uuid", help="a VDI uuid, exposed or not")
@url_option
@json_option
def get_record(record_handle: Optional[str], vdi_uuid: Optional[str], url: Optional[str], as_json: bool) -> None:
    """Print the transfer_record XML (with --json, its attributes)."""
    if not record_handle and not vdi_uuid:
        raise click.UsageError("give --handle or --vdi")
    text = _call(url, "get_record", record_handle=record_handle, vdi_uuid=vdi_uuid)
    if as_json:
        emit(_record_dict(text), True)
    else:
        click.echo(text, nl=False)


@transfer.command("unexpose")
@click.argument("record_handle")
@url_option
def unexpose(record_handle: str, url: Optional[str]) -> None:
    """Stop exposing the VDI of RECORD_HANDLE."""
    click.echo(_call(url, "unexpose", record_handle=record_handle))


@transfer.command("cleanup")
@url_option
def cleanup(url: Optional[str]) -> None:
    """Remove exposures that timed out or whose server died."""
    click.echo(_call(url, "cleanup"))


@transfer.command("save-logs")
@click.argument("record_handle")
@url_option
def save_logs(record_handle: str, url: Optional[str]) -> None:
    """Copy an exposure's server log to the host's log directory; prints where."""
    click.echo(_call(url, "save_logs", record_handle=record_handle))


@transfer.command("expose-forest")
@click.argument("vdis")
@click.option("--network", default="management", show_default=True)
@click.option("--read-only/--read-write", default=None)
@click.option("--ssl/--no-ssl", default=None)
@url_option
def expose_forest(vdis: str, network: str, read_only: Optional[bool], ssl: Optional[bool],
                  url: Optional[str]) -> None:
    """Expose every VDI of the trees of VDIS (comma-separated) over BITS; prints the handles."""
    click.echo(_call(url, "expose_forest", vm_uuids=vdis, network_uuid=network, read_only=_bool(read_only),
                     use_ssl=_bool(ssl)))


@transfer.command("ips-needed")
@click.argument("vdis")
@url_option
def ips_needed(vdis: str, url: Optional[str]) -> None:
    """How many exposures (addresses) expose-forest needs for VDIS."""
    click.echo(_call(url, "number_of_ip_addresses_needed", vm_uuids=vdis))


@transfer.command("import-instructions")
@click.argument("vdi")
@url_option
def import_instructions(vdi: str, url: Optional[str]) -> None:
    """The steps that rebuild the snapshot tree described by the VM metadata in VDI."""
    click.echo(_call(url, "get_import_instructions", vdi_uuid=vdi))


@transfer.command("serve-host")
@click.option("--port", type=int, required=True, help="TCP port (0: any free port, printed)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--allow-remote", is_flag=True, help="allow an address other than loopback")
@click.option("--listen-all", is_flag=True, help="allow --host 0.0.0.0 or :: (every interface; with --allow-remote)")
@click.option("--user", default="root", show_default=True, help="HTTP auth user name")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False),
              help="file holding the HTTP auth password (default: a random one, printed)")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM)")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM)")
def serve_host(port: int, host: str, allow_remote: bool, listen_all: bool, user: str, password_file: Optional[str],
               cert: Optional[str], key: Optional[str]) -> None:
    """Serve /export_raw_vdi and /import_raw_vdi (vdi=, format=raw|vhd|tar, base=) until interrupted."""
    import secrets

    from smapi.transfer.auth import Authenticator, Credentials
    from smapi.transfer.handlers import HostSite, TransferHandler, serve_open_disk_factory
    from smapi.transfer.httpserve import TransferServer
    from smapi.transfer.locate import find_vdi, open_data
    from smapi.transfer.tls import server_context

    if host not in ("127.0.0.1", "::1", "localhost") and not allow_remote:
        raise click.UsageError(f"{host} is not loopback: add --allow-remote to listen there")
    refuse_wildcard(host, listen_all, "--host")
    if bool(cert) != bool(key):
        raise click.UsageError("--cert and --key go together")
    if password_file:
        with open(password_file) as f:
            password = f.read().strip()
    else:
        password = secrets.token_hex(8)
        click.echo(f"password: {password}", err=True)
    auth = Authenticator(Credentials(user, password), allow_basic=bool(cert))
    site = HostSite(auth, serve_open_disk_factory(lambda vdi, writable: open_data(find_vdi(vdi), writable)))
    server = TransferServer((host, port), TransferHandler, site,
                            ssl_context=server_context(cert, key) if cert and key else None)
    click.echo(f"serving /export_raw_vdi and /import_raw_vdi on {host}:{server.port}", err=True)
    serve_until_stopped(server)


def refuse_wildcard(address: Optional[str], listen_all: bool, option: str) -> None:
    """0.0.0.0 and :: mean every interface of the host, storage networks and public ones alike: only on request."""
    import ipaddress

    try:
        unspecified = address is not None and ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return  # not an address: the service says what is wrong with it
    if unspecified and not listen_all:
        raise click.UsageError(f"{option} {address} listens on every interface of this host; name one of its "
                               f"addresses, or add --listen-all if that is really meant")


COMMANDS = (transfer,)
