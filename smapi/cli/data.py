"""Moving disk data in and out of a VDI from the shell: vdi-import and vdi-export.

Formats (`--format`, see `smapi.transfer.formats`): `raw` (the default; zero blocks become holes on export and are
skipped on import), `vhd` (a dynamic VHD; with `--base VDI` a differencing VHD of what changed since that VDI),
`tar` (xapi's 1 MiB chunks with xxhash checksums, zero chunks left out) and `xva-legacy` (a directory of 1e9-byte
gzip chunks). Every format streams: memory stays at a few chunks whatever the disk size, and imports verify
checksums as they go, stopping with a clear error at the first corrupt chunk.

They use the driver's data handle (`driver.open_vdi(sr, vdi, writable)`), so they run against a driver loaded in
this process (with `--url`, the SR must be attached on this host; serving data to remote callers is the transfer
service's job). `-` as INPUT or OUTPUT streams stdin or stdout (not for xva-legacy, a directory).

An import is atomic, like a transfer upload: it writes into an upload scratch (`smapi.sr.scratch`) that lands in
the VDI only once the whole input was read and verified. An import that fails, is interrupted or killed leaves
the VDI as it was (a killed one leaves a scratch that the SR's next scan or attach removes).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, Optional

import click

from smapi.cli.common import emit, json_option, progress_bar, sr_option, target_options, vdi_argument
from smapi.cli.select import Selected, local_driver, select_sr, select_vdi

CHUNK = 2 << 20  # one VHD block: whole-block I/O is what the VHD engine serves fastest
_ZERO = bytes(CHUNK)
FORMATS = ("raw", "vhd", "tar", "xva-legacy")  # smapi.transfer.formats.CLI_FORMATS (kept here: no import at startup)


def _data_handle(s: Selected, vdi: str, writable: bool) -> Any:
    from smapi.cli.target import LocalTarget

    local = LocalTarget(local_driver(s))
    sr = s.sr
    local.call("VDI.stat", dbg="vdi-data", sr=sr, vdi=vdi)  # a typed error for an unknown SR or VDI
    opener = getattr(local.driver, "open_vdi", None)
    if opener is None:
        raise click.UsageError(f"driver {local.driver.name} offers no data access (open_vdi)")
    return opener(sr, vdi, writable=writable)


def _disk(stack: ExitStack, s: Selected, vdi: str, writable: bool) -> Any:
    from smapi.transfer.disk import Disk

    disk = Disk(_data_handle(s, vdi, writable), writable)
    stack.callback(disk.close)
    return disk


class _HashingWriter:
    """A file object that hashes what goes through it (the sha256 printed for vhd and tar exports)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _export_raw_stream(disk: Any, out: Any, tick: Callable[[int], None]) -> dict:
    """To a pipe: every byte, zeros included (a pipe has no holes)."""
    digest = hashlib.sha256()
    for offset in range(0, disk.size, CHUNK):
        data = disk.read(offset, min(CHUNK, disk.size - offset))
        digest.update(data)
        out.write(data)
        tick(len(data))
    out.flush()
    return {"bytes": disk.size, "sha256": digest.hexdigest()}


def _export_raw(disk: Any, output: str, tick: Callable[[int], None]) -> dict:
    if output == "-":
        return _export_raw_stream(disk, sys.stdout.buffer, tick)
    digest = hashlib.sha256()
    size = disk.size
    with open(output, "wb") as out:
        out.truncate(size)
        for offset in range(0, size, CHUNK):
            data = disk.read(offset, min(CHUNK, size - offset))
            digest.update(data)
            if data != _ZERO[: len(data)]:
                out.seek(offset)
                out.write(data)
            tick(len(data))
        out.flush()
        os.fsync(out.fileno())
    return {"bytes": size, "sha256": digest.hexdigest()}


@click.command("vdi-export")
@target_options
@sr_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="raw", show_default=True)
@click.option("--base", help="vhd only: export what differs from this VDI, as a differencing VHD")
@click.option("--progress/--no-progress", default=True, help="show a progress bar (on a terminal)")
@json_option
@vdi_argument()
@click.argument("output", type=click.Path(writable=True, allow_dash=True))
def vdi_export(driver: Optional[str], url: Optional[str], sr: str, fmt: str, base: Optional[str], progress: bool,
               as_json: bool, vdi: str, output: str) -> None:
    """Write VDI to OUTPUT (`-`: stdout; a directory for xva-legacy); prints the size and the sha256 of what was
    written (of the disk content for raw and xva-legacy), on stderr when OUTPUT is stdout."""
    from smapi.transfer import formats

    if base and fmt != "vhd":
        raise click.UsageError("--base works with --format vhd")
    if output == "-" and fmt == "xva-legacy":
        raise click.UsageError("xva-legacy writes a directory of chunks; give a directory, not -")
    s = select_sr(driver, url, sr)
    vdi = select_vdi(s, vdi)
    base = select_vdi(s, base) if base else None
    with ExitStack() as stack:
        disk = _disk(stack, s, vdi, False)
        base_disk = _disk(stack, s, base, False) if base else None
        fmt_obj = formats.get(fmt)
        try:
            export = fmt_obj.export(disk, vdi, base_disk, base or "") if fmt_obj is not None else None
        except formats.BaseMismatch as e:
            raise click.ClickException(str(e)) from None
        total = export.length if export is not None and export.length is not None else disk.size
        tick = stack.enter_context(progress_bar(total, "export", progress))
        if fmt == "raw":
            result = _export_raw(disk, output, tick)
        elif fmt == "xva-legacy":
            digest = hashlib.sha256()

            def read(offset: int, length: int) -> bytes:
                data = disk.read(offset, length)
                digest.update(data)
                return data

            chunks = formats.XVA_LEGACY.export_to(read, disk.size, output, progress=tick)
            result = {"bytes": disk.size, "sha256": digest.hexdigest(), "chunks": chunks}
        else:
            assert export is not None
            with (open(output, "wb") if output != "-" else _unclosed(sys.stdout.buffer)) as f:
                out = _HashingWriter(f)
                export.write_to(out, progress=tick)
                f.flush()
                if output != "-":
                    os.fsync(f.fileno())
            result = {"bytes": out.count, "sha256": out.digest.hexdigest()}
    _report({"vdi": vdi, "format": fmt, **result}, as_json, output == "-",
            lambda r: f"{r['bytes']} bytes  sha256 {r['sha256']}")


def _report(value: dict, as_json: bool, to_stderr: bool, line: Callable[[dict], str]) -> None:
    """The summary; on stderr when stdout carries the data."""
    if to_stderr:
        click.echo(json.dumps(value, sort_keys=True) if as_json else line(value), err=True)
    else:
        emit(value, as_json, lambda r: click.echo(line(r)))


@contextmanager
def _unclosed(f: Any) -> Iterator[Any]:
    yield f


class _HashingReader:
    def __init__(self, f: Any, tick: Callable[[int], None]) -> None:
        self.f = f
        self.tick = tick
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.digest.update(data)
        self.count += len(data)
        self.tick(len(data))
        return data


@click.command("vdi-import")
@target_options
@sr_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="raw", show_default=True)
@click.option("--progress/--no-progress", default=True, help="show a progress bar (on a terminal)")
@json_option
@vdi_argument()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, allow_dash=True))
def vdi_import(driver: Optional[str], url: Optional[str], sr: str, fmt: str, progress: bool, as_json: bool,
               vdi: str, input_path: str) -> None:
    """Write INPUT (`-`: stdin) into VDI: afterwards the VDI reads like INPUT (zero regions cost nothing where the
    VDI already reads zero). A vhd is applied by its marked sectors (a differencing VHD onto its base's copy); tar
    and xva-legacy checksums are verified. Snapshots refuse imports: import into a clone."""
    from smapi.transfer import formats
    from smapi.transfer.exact import ExactImport
    from smapi.vhd import VhdError

    if input_path == "-" and fmt == "xva-legacy":
        raise click.UsageError("xva-legacy reads a directory of chunks; give a directory, not -")
    s = select_sr(driver, url, sr)
    vdi = select_vdi(s, vdi)
    with ExitStack() as stack:
        disk = _disk(stack, s, vdi, True)
        # Closing the disk discards an upload that did not commit: every error path leaves the VDI unchanged.
        up = disk.begin_upload()
        exact = ExactImport(up)
        if fmt == "xva-legacy":
            if not os.path.isdir(input_path):
                raise click.UsageError(f"{input_path}: xva-legacy input is a directory of chunk-*.gz")
            total = sum(os.path.getsize(os.path.join(input_path, n)) for n in os.listdir(input_path))
            tick = stack.enter_context(progress_bar(disk.size, "import", progress))
            nbytes = formats.XVA_LEGACY.import_from(exact, input_path, progress=tick)
            up.commit()
            emit({"vdi": vdi, "format": fmt, "bytes": nbytes, "input_bytes": total}, as_json,
                 lambda r: click.echo(f"{r['bytes']} bytes imported"))
            return
        size: Optional[int] = None if input_path == "-" else os.path.getsize(input_path)
        if fmt == "raw" and size is not None and size > disk.size:
            raise click.UsageError(f"{input_path} is {size} bytes but VDI {vdi} holds {disk.size}; "
                                   f"grow it first (smapi vdi-resize)")
        tick = stack.enter_context(progress_bar(size or disk.size, "import", progress))
        with (open(input_path, "rb") if input_path != "-" else _unclosed(sys.stdin.buffer)) as f:
            src = _HashingReader(f, tick)
            fmt_obj = formats.get(fmt)
            assert fmt_obj is not None
            try:
                fmt_obj.import_into(exact, src, size)
            except VhdError as e:
                raise click.ClickException(f"{input_path}: {e}") from None
        up.commit()
    emit({"vdi": vdi, "format": fmt, "bytes": src.count, "sha256": src.digest.hexdigest()}, as_json,
         lambda r: click.echo(f"{r['bytes']} bytes  sha256 {r['sha256']}"))


COMMANDS = (vdi_export, vdi_import)
