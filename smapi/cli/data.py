"""Moving disk data in and out of a VDI from the shell: vdi-import and vdi-export (raw).

They use the driver's data handle (`driver.open_vdi(sr, vdi, writable)`), so they run against a driver loaded in
this process; serving data to remote callers is the transfer service's job.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import click

from smapi.cli.common import emit, json_option

CHUNK = 2 << 20  # one VHD block: whole-block I/O is what the VHD engine serves fastest
_ZERO = bytes(CHUNK)


def _data_handle(driver_spec: str, sr: str, vdi: str, writable: bool) -> Any:
    from smapi.cli.target import LocalTarget

    local = LocalTarget(driver_spec)
    local.call("VDI.stat", dbg="vdi-data", sr=sr, vdi=vdi)  # a typed error for an unknown SR or VDI
    opener = getattr(local.driver, "open_vdi", None)
    if opener is None:
        raise click.UsageError(f"driver {local.driver.name} offers no data access (open_vdi)")
    return opener(sr, vdi, writable=writable)


@click.command("vdi-export")
@click.option("--driver", "-d", required=True, help="the SR's driver (runs in this process)")
@click.option("--sr", required=True, help="the SR (uuid)")
@click.option("--progress/--no-progress", default=True, help="show a progress bar")
@json_option
@click.argument("vdi")
@click.argument("output", type=click.Path(dir_okay=False, writable=True))
def vdi_export(driver: str, sr: str, progress: bool, as_json: bool, vdi: str, output: str) -> None:
    """Write VDI's whole virtual disk to OUTPUT as raw bytes (zero blocks become holes); prints its sha256."""
    handle = _data_handle(driver, sr, vdi, writable=False)
    digest = hashlib.sha256()
    try:
        size = handle.size
        with open(output, "wb") as out, click.progressbar(length=size, label="export", hidden=not progress,
                                                          file=click.get_text_stream("stderr")) as bar:
            out.truncate(size)
            for offset in range(0, size, CHUNK):
                data = handle.read(offset, min(CHUNK, size - offset))
                digest.update(data)
                if data != _ZERO[: len(data)]:
                    out.seek(offset)
                    out.write(data)
                bar.update(len(data))
            out.flush()
            os.fsync(out.fileno())
    finally:
        handle.close()
    emit({"vdi": vdi, "bytes": size, "sha256": digest.hexdigest()}, as_json,
         lambda r: click.echo(f"{r['bytes']} bytes  sha256 {r['sha256']}"))


@click.command("vdi-import")
@click.option("--driver", "-d", required=True, help="the SR's driver (runs in this process)")
@click.option("--sr", required=True, help="the SR (uuid)")
@click.option("--progress/--no-progress", default=True, help="show a progress bar")
@json_option
@click.argument("vdi")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
def vdi_import(driver: str, sr: str, progress: bool, as_json: bool, vdi: str, input_path: str) -> None:
    """Write raw INPUT into VDI from offset 0 (zero blocks are skipped: a fresh VDI already reads zero)."""
    size = os.path.getsize(input_path)
    handle = _data_handle(driver, sr, vdi, writable=True)
    digest = hashlib.sha256()
    try:
        if size > handle.size:
            raise click.UsageError(f"{input_path} is {size} bytes but VDI {vdi} holds {handle.size}; "
                                   f"grow it first (vdi-resize)")
        with open(input_path, "rb") as src, click.progressbar(length=size, label="import", hidden=not progress,
                                                             file=click.get_text_stream("stderr")) as bar:
            offset = 0
            while True:
                data = src.read(CHUNK)
                if not data:
                    break
                digest.update(data)
                if data != _ZERO[: len(data)]:
                    handle.write(offset, data)
                offset += len(data)
                bar.update(len(data))
        handle.flush()
    finally:
        handle.close()
    emit({"vdi": vdi, "bytes": size, "sha256": digest.hexdigest()}, as_json,
         lambda r: click.echo(f"{r['bytes']} bytes  sha256 {r['sha256']}"))




COMMANDS = (vdi_export, vdi_import)
