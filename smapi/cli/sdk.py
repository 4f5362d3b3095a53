"""Commands for vendors and packagers: certify a driver, install the Transfer host plugin."""

from __future__ import annotations

from typing import Optional, Sequence

import click

from smapi.cli.common import DRIVER_HELP


@click.command("conformance", context_settings={"ignore_unknown_options": True})
@click.option("--driver", required=True, help=DRIVER_HELP)
@click.option("--config", default=None, metavar="JSON",
              help='device_config of each test\'s SR; "{tmp}" in a value becomes the test\'s own directory  '
                   '[default: {"path": "{tmp}/sr"}]')
@click.option("--factory", "factory_ref", default=None, metavar="MODULE:FUNCTION",
              help="instead of --config: a function(directory) -> smapi.testing.SRUnderTest that sets up storage")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def conformance(ctx: click.Context, driver: str, config: Optional[str], factory_ref: Optional[str],
                pytest_args: Sequence[str]) -> None:
    """Run the SR conformance suite against an installed driver.

    Tests of features the driver does not declare in Query.query (VDI_SNAPSHOT, VDI_CLONE, ...) or that need a
    hook it lacks (open_vdi, gc) are reported as skipped, with the reason. Extra arguments go to pytest
    (-k EXPR, -x, -n 2 ...). Exit code 0: every test passed or was skipped."""
    from smapi.testing.runner import ToolsMissing, run

    try:
        code = run(driver, config, factory_ref, pytest_args)
    except ToolsMissing as e:
        raise click.ClickException(str(e)) from e
    ctx.exit(code)


@click.command("transfer-plugin-install")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
def transfer_plugin_install(directory: Optional[str]) -> None:
    """Write the XenAPI host plugin `transfer` (host.call_plugin(host, "transfer", fn, args)).

    DIRECTORY defaults to /etc/xapi.d/plugins."""
    from smapi.transfer.plugin_install import DEFAULT_DIR, install_transfer_plugin

    where = install_transfer_plugin(directory or DEFAULT_DIR)
    click.echo(f"wrote {where}")


COMMANDS = [conformance, transfer_plugin_install]
