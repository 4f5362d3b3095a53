"""`smapi`: the command line for people and scripts.

Every command exits non-zero with a one-line reason on error (a typed SMAPI error, never a traceback).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import click

from smapi.cli import data, host, sdk, sr, transfer, vdi, vdimeta
from smapi.cli.common import DRIVER_HELP, emit, json_option, serve_until_stopped, target, target_options
from smapi.cli.hints import cli_hints
from smapi.cli.sanlock import sanlock as sanlock_group
from smapi.cli.vdi import vdi_create
from smapi.interface.errors import SmapiError


class SmapiGroup(click.Group):
    """Turns typed SMAPI errors into a one-line message and exit code 1, for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SmapiError as e:
            click.echo(f"error: {cli_hints(str(e), self.commands)}", err=True)
            ctx.exit(1)
        except (ValueError, LookupError, OSError) as e:
            if isinstance(e, (click.ClickException, BrokenPipeError)):
                raise
            click.echo(f"error: {cli_hints(str(e), self.commands)}", err=True)
            ctx.exit(1)


HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


@click.group(cls=SmapiGroup, context_settings=HELP_OPTIONS)
@click.version_option(package_name="smapi")
def cli() -> None:
    """smapi: storage-manager plugin framework. Serve drivers, install plugins, manage SRs and VDIs."""


@cli.command()
@click.option("--driver", required=True, help=DRIVER_HELP)
@click.option("--unix", "unix_path", type=click.Path(), help="listen on this Unix socket")
@click.option("--port", type=int, help="listen on this TCP port (loopback unless --host is given)")
@click.option("--host", default="127.0.0.1", show_default=True, help="TCP address to bind")
@click.option("--allow-remote", is_flag=True, help="allow binding a TCP address other than loopback")
@click.option("--protocol", type=click.Choice(["xmlrpc", "jsonrpc"]), default="xmlrpc", show_default=True)
@click.option("--api", type=click.Choice(["storage", "v3", "transfer"]), default="storage", show_default=True)
def serve(driver: str, unix_path: Optional[str], port: Optional[int], host: str, allow_remote: bool, protocol: str,
          api: str) -> None:
    """Serve a driver over XML-RPC or JSON-RPC until interrupted."""
    from smapi.core.driver import load_driver

    if not unix_path and port is None:
        raise click.UsageError("give --unix PATH or --port N")
    loaded = load_driver(driver)
    dispatcher = loaded.dispatcher(api)
    if protocol == "xmlrpc":
        from smapi.rpc.xmlrpc import make_xmlrpc_server as make_server
    else:
        from smapi.rpc.jsonrpc import make_jsonrpc_server as make_server
    server = make_server(dispatcher, unix_path=unix_path, host=host, port=port or 0, allow_remote=allow_remote)
    where = unix_path if unix_path else f"{host}:{server.address[1]}"
    click.echo(f"serving driver {loaded.name} ({api} API) over {protocol} on {where}", err=True)
    try:
        serve_until_stopped(server)
    finally:
        if unix_path and os.path.exists(unix_path):
            os.unlink(unix_path)


@cli.command("plugin-install")
@click.option("--driver", required=True, help=DRIVER_HELP)
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="xapi-storage-script's plugin root  [default: /usr/libexec/xapi-storage-script]")
@click.option("--name", default=None, help="the volume plugin's name, which is the SR type (default: smapi-<driver>)")
@click.option("--api", type=click.Choice(["v3", "storage", "transfer"]),
              help="with DIRECTORY: which interface the executables serve (default: v3 when the driver has it)")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
def plugin_install(driver: str, root: Optional[str], name: Optional[str], api: Optional[str],
                   directory: Optional[str]) -> None:
    """Install a driver for xapi-storage-script: ROOT/volume/NAME/ and ROOT/datapath/smapi/.

    With DIRECTORY instead, write one flat directory holding an executable per verb of one API (Plugin.Query,
    SR.create, Volume.snapshot, ...), for other callers and for tests."""
    if directory is not None:
        if root is not None or name is not None:
            raise click.UsageError("give either DIRECTORY or --root/--name, not both")
        from smapi.rpc.plugin_dir import install_plugin

        names = install_plugin(driver, directory, api)
        click.echo(f"wrote {len(names)} verb executables into {directory}")
        return
    if api not in (None, "v3"):
        raise click.UsageError("xapi-storage-script plugins serve the v3 API; use DIRECTORY for other APIs")
    from smapi.rpc.storage_script import DEFAULT_ROOT, install_storage_script

    done = install_storage_script(driver, root or DEFAULT_ROOT, name)
    click.echo(f"volume plugin: {done.volume_dir}")
    click.echo(f"datapath plugin: {done.datapath_dir}")


@cli.command("classic-install")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
@click.option("--only", "names", multiple=True, help="write only this executable (FileSR, NFSSR, LVMSR, ...)")
def classic_install(directory: Optional[str], names: Any) -> None:
    """Write the classic <Type>SR executables xapi runs (FileSR, NFSSR, LVMSR, LVMoISCSISR, ISCSISR).

    DIRECTORY defaults to /opt/xensource/sm."""
    from smapi.rpc.classic_install import DEFAULT_DIR, install_classic

    where = directory or DEFAULT_DIR
    written = install_classic(where, names)
    click.echo(f"wrote {', '.join(written)} into {where}")


@cli.command("sm-query")
@target_options
@json_option
def sm_query(driver: Optional[str], url: Optional[str], as_json: bool) -> None:
    """Show what a driver is and what it supports (Query.query)."""
    result = target(driver, url).call("Query.query", dbg="sm-query")

    def human(q: Any) -> None:
        click.echo(f"{q['name']} ({q['driver']} {q['version']}) by {q['vendor']}")
        click.echo(q["description"])
        click.echo(f"features: {' '.join(q['features'])}")
        for key, text in q["configuration"].items():
            click.echo(f"  device_config {key}: {text}")

    emit(result, as_json, human)


for _command in (*sr.COMMANDS, *vdi.COMMANDS, *vdimeta.COMMANDS, *data.COMMANDS, *transfer.COMMANDS,
                 *host.COMMANDS, *sdk.COMMANDS, sanlock_group):
    cli.add_command(_command)


def _mount_optional_groups() -> None:
    """Subcommand groups contributed by other parts of smapi, present when their modules are."""
    try:
        from smapi.cli.vhd import vhd
    except ImportError:  # pragma: no cover - the VHD CLI ships with the package
        return
    cli.add_command(vhd)


_mount_optional_groups()


def _help_options_everywhere(command: click.Command) -> None:
    """`-h` on every command and group, however deep (a group's own context does not inherit it everywhere)."""
    command.context_settings = {**HELP_OPTIONS, **command.context_settings}
    for sub in getattr(command, "commands", {}).values():
        _help_options_everywhere(sub)


_help_options_everywhere(cli)


def main() -> None:
    try:
        cli(prog_name="smapi")
    except BrokenPipeError:
        # the reader of our stdout went away (`smapi vdi-export ... - | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _standalone(command: click.Command, prog: str) -> None:
    """Run one command as its own console script, with the same error handling (and -h) as the group."""
    _help_options_everywhere(command)
    try:
        command.main(prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(1)
    except (SmapiError, ValueError, LookupError, OSError) as e:
        click.echo(f"error: {cli_hints(str(e), cli.commands)}", err=True)
        sys.exit(1)


def sm_query_main() -> None:
    _standalone(sm_query, "sm-query")


def vdi_create_main() -> None:
    _standalone(vdi_create, "vdi-create")


if __name__ == "__main__":
    main()
