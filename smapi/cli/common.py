"""Pieces shared by the `smapi` subcommands: target options, sizes, tables, output."""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import click

from smapi.cli.select import complete_sr, complete_vdi
from smapi.cli.target import Target, make_target

DRIVER_HELP = "driver: an installed name (e.g. file), module:Class or path/file.py:Class"
URL_HELP = ("server URL: http://127.0.0.1:PORT, xmlrpc+unix:///sock, jsonrpc+http://..., jsonrpc+unix:///sock "
            "or exec:///plugin-dir")

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(text: str) -> int:
    """`10G`, `512M`, `512MiB`, `4096`, `1.5T` -> bytes (binary units)."""
    s = text.strip().upper()
    for suffix in ("IB", "B"):
        if len(s) > len(suffix) and s.endswith(suffix) and s[-len(suffix) - 1] in _UNITS:
            s = s[: -len(suffix)]
            break
    unit = s[-1] if s and s[-1] in _UNITS and not s[-1].isdigit() else ""
    number = s[:-1] if unit else s
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size (examples: 4096, 512M, 10G)") from None
    if value < 0:
        raise click.BadParameter("a size cannot be negative")
    return int(value * _UNITS[unit])


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def parse_config(pairs: Sequence[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--config")
        out[key] = value
    return out


SELECTED_DRIVER_HELP = DRIVER_HELP + " (only for an SR not in this host's configuration: it records each SR's driver)"


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--url", help=URL_HELP)(fn)
    fn = click.option("--driver", "-d", help=SELECTED_DRIVER_HELP)(fn)
    return fn


def sr_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--sr SR`: the SR by UUID, unique UUID prefix or name (completed by the shell)."""
    return click.option("--sr", required=True, shell_complete=complete_sr,
                        help="the SR: UUID, unique UUID prefix or name")(fn)


def sr_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("sr", shell_complete=complete_sr)(fn)


def vdi_argument(name: str = "vdi") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A VDI by UUID, unique UUID prefix or name, within the command's `--sr` (completed by the shell)."""
    return click.argument(name, shell_complete=complete_vdi)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(fn)


def target(driver: Optional[str], url: Optional[str]) -> Target:
    return make_target(driver, url)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def emit(value: Any, as_json: bool, human: Optional[Callable[[Any], None]] = None) -> None:
    if as_json or human is None:
        click.echo(json.dumps(value, sort_keys=True) if as_json else json.dumps(value, indent=2, sort_keys=True))
    else:
        human(value)


def vdi_rows(vdis: List[Dict[str, Any]]) -> str:
    rows = []
    for v in sorted(vdis, key=lambda v: (v["name_label"], v["vdi"])):
        flags = ",".join(f for f, on in (("snapshot", v["is_a_snapshot"]), ("ro", v["read_only"]),
                                         ("nonpersistent", not v["persistent"])) if on)
        rows.append([v["vdi"], v["name_label"], human_size(v["virtual_size"]),
                     human_size(v["physical_utilisation"]), flags or "-"])
    return table(rows, ["VDI", "NAME", "SIZE", "USED", "FLAGS"])


@contextmanager
def progress_bar(length: int, label: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A function to call with each number of bytes done: a bar on a terminal, nothing otherwise.

    Off a terminal (a pipe, a log, a script's capture) nothing is printed at all: click's bar would still print
    its label there. No `hidden=` argument: click < 8.2 lacks it."""
    if not enabled or not _stderr_is_tty():
        yield lambda n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


@contextmanager
def busy(label: str, enabled: bool = True) -> Iterator[None]:
    """For a long step whose progress cannot be measured (one server call): `label... 12s` on a terminal."""
    if not enabled or not _stderr_is_tty():
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        while not done.wait(0.5):
            sys.stderr.write(f"\r{label}... {time.monotonic() - start:.0f}s")
            sys.stderr.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def serve_until_stopped(server: Any) -> None:
    """Run `server.serve_forever()` in a thread until SIGTERM or Ctrl-C, then shut it down and close it."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
