"""`smapi sanlock start|stop|status --run-dir DIR`: a private sanlock daemon for hosts without the system one.

Containers and tests that simulate several hosts on one machine run one daemon per (simulated) host; every smapi
process of that host then sets `SANLOCK_RUN_DIR=DIR`. Real hosts use the system daemon (/run/sanlock, with its
watchdog) and need none of this (docs/pool.md).
"""

from __future__ import annotations

from typing import Any

import click

RUN_DIR_HELP = "the daemon's run directory (socket, pid file, log); clients select it with SANLOCK_RUN_DIR"


class _Group(click.Group):
    """One line and exit status 1 when the daemon cannot be started or stopped."""

    def invoke(self, ctx: click.Context) -> Any:
        from smapi.sr.sanlock.daemon import DaemonError

        try:
            return super().invoke(ctx)
        except (DaemonError, OSError) as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group)
def sanlock() -> None:
    """Private sanlock daemons (shared-SR leases where the system daemon is absent)."""


@sanlock.command("start")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help=RUN_DIR_HELP)
@click.option("--host-name", default="", help="this host's name in delta leases (default: the run dir's name)")
def start(run_dir: str, host_name: str) -> None:
    """Start a daemon (no watchdog) serving RUN_DIR; does nothing when one already answers there."""
    from smapi.sr.sanlock.daemon import start as start_daemon

    click.echo(f"sanlock daemon {start_daemon(run_dir, host_name)} serving {run_dir}")


@sanlock.command("stop")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help=RUN_DIR_HELP)
def stop(run_dir: str) -> None:
    """Stop the daemon serving RUN_DIR (it leaves every lockspace; lease holders are killed first)."""
    from smapi.sr.sanlock.daemon import stop as stop_daemon

    click.echo("stopped" if stop_daemon(run_dir) else f"no sanlock daemon runs in {run_dir}")


@sanlock.command("status")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help=RUN_DIR_HELP)
def status(run_dir: str) -> None:
    """Say whether a daemon answers in RUN_DIR (exit status 1 when none does)."""
    from smapi.sr.sanlock.daemon import answering, daemon_pid

    pid = daemon_pid(run_dir)
    if pid is None or not answering(run_dir):
        raise click.ClickException(f"no sanlock daemon answers in {run_dir}")
    click.echo(f"sanlock daemon {pid} serving {run_dir}")
