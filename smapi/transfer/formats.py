"""Disk import/export formats shared by the CLI (vdi-export/vdi-import) and the toolstack HTTP endpoints.

    raw         the virtual disk byte for byte (export skips nothing; the CLI writes zero blocks as holes)
    vhd         a dynamic VHD of the VDI, or a differencing VHD against `base` (see `smapi.transfer.vhdview`);
                import applies the marked sectors of a dynamic or differencing VHD
    tar         xapi's Stream_vdi chunks: tar members `<prefix>/%08d` of 1 MiB + `.xxhash`, zero chunks skipped
    xva-legacy  a directory of `chunk-%09d.gz`, each the gzip of 1e9 bytes (historical; CLI only)

Everything streams: memory is bounded by a block or a chunk whatever the disk size.
"""

from __future__ import annotations

from typing import IO, Callable, Iterator, Optional, Protocol

from smapi.transfer import xva
from smapi.transfer.disk import Disk
from smapi.transfer.vhdupload import VhdReceiver
from smapi.transfer.vhdview import VhdLayout, differencing_view, dynamic_view
from smapi.transfer.xva import XvaFormatError
from smapi.vhd.constants import DISK_DIFF

FORMATS = ("raw", "vhd", "tar", "xva-legacy")
CONTENT_TYPES = {"raw": "application/octet-stream", "vhd": "application/vhd", "tar": "application/x-tar"}
TAR_PREFIX = "vdi"  # xapi's Xapi_globs.vdi_tar_export_dir for /export_raw_vdi?format=tar
PIECE = 1 << 20
Progress = Optional[Callable[[int], None]]


class Sink(Protocol):
    """Where an import writes: a Disk, an Upload, or an ExactImport in front of one."""

    size: int

    def write(self, offset: int, data: bytes) -> None: ...

__all__ = ["FORMATS", "CONTENT_TYPES", "XvaFormatError", "vhd_layout", "export_tar", "import_tar", "import_vhd",
           "raw_pieces"]


def vhd_layout(disk: Disk, vdi: str, base: Optional[Disk] = None, base_uuid: str = "") -> VhdLayout:
    if base is not None:
        return differencing_view(disk, vdi, base, base_uuid)
    return dynamic_view(disk, vdi)


def raw_pieces(disk: Disk) -> Iterator[bytes]:
    for off in range(0, disk.size, PIECE):
        yield disk.read(off, min(PIECE, disk.size - off))


def export_tar(disk: Disk, out: IO[bytes], prefix: str = TAR_PREFIX, progress: Progress = None) -> int:
    return xva.write_tar_chunks(disk.read, disk.size, out, prefix, progress=progress)


def import_tar(disk: Sink, stream: IO[bytes], prefix: Optional[str] = None, progress: Progress = None) -> int:
    """Checksums are verified chunk by chunk before each write; a corrupt chunk stops the import there."""
    return xva.read_tar_chunks(stream, disk.write, disk.size, prefix, progress=progress)


def import_vhd(disk: Sink, stream: IO[bytes], length: Optional[int], progress: Progress = None) -> bool:
    """Apply the marked sectors of a dynamic or differencing VHD; returns whether it describes a whole disk
    (dynamic: unmarked sectors read zero) rather than changes to a base (differencing: unmarked means unchanged)."""
    receiver = VhdReceiver(disk.size, disk.write, length=length)
    while True:
        data = stream.read(PIECE)
        if not data:
            break
        receiver.feed(data)
        if progress:
            progress(len(data))
    receiver.finish()
    return receiver.footer.disk_type != DISK_DIFF
