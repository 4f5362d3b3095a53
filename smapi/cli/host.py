"""Host set-up commands: host-install-unit (attach the recorded SRs at boot) and man-pages."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional

import click

from smapi.cli import hostconfig


def smapi_executable() -> str:
    """The `smapi` console script of this installation (beside the running Python, else on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "smapi")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("smapi") or f"{sys.executable} -m smapi.cli.main"


@click.command("host-install-unit")
@click.option("--dir", "directory", default="/etc/systemd/system", show_default=True, type=click.Path(file_okay=False),
              help="where to write the unit")
@click.option("--print", "print_only", is_flag=True, help="print the unit instead of writing it")
def host_install_unit(directory: str, print_only: bool) -> None:
    """Write the systemd unit that runs `smapi sr-attach --all` at boot (and `sr-detach --all` at shutdown).

    Then: `systemctl daemon-reload && systemctl enable smapi-attach.service`."""
    from smapi.common.files import atomic_write

    text = hostconfig.UNIT_TEXT.format(smapi=smapi_executable())
    if print_only:
        click.echo(text, nl=False)
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, hostconfig.UNIT_NAME)
    atomic_write(path, text, mode=0o644)
    click.echo(path)


@click.command("man-pages")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
def man_pages(directory: Optional[str]) -> None:
    """Write the man pages (smapi.1 and smapi-COMMAND.1) into DIRECTORY (default: ./man)."""
    from smapi.cli.manpages import write_man_pages
    from smapi.common.version import __version__

    root = click.get_current_context().find_root().command
    assert isinstance(root, click.Group)
    where = directory or "man"
    written = write_man_pages(root, where, __version__)
    click.echo(f"wrote {len(written)} pages into {where}")


COMMANDS = (host_install_unit, man_pages)
