"""Disk formats, one object each, shared by the CLI (vdi-export/vdi-import) and the HTTP endpoints.

    raw         the virtual disk byte for byte
    vhd         a dynamic VHD of the VDI, or a differencing VHD against `base` (`smapi.vhd.view`); import applies
                the marked sectors of a dynamic or differencing VHD (`smapi.vhd.receive`)
    tar         xapi's Stream_vdi chunks: tar members `<prefix>/%08d` of 1 MiB + `.xxhash`, zero chunks skipped
    xva-legacy  a directory of `chunk-%09d.gz`, each the gzip of 1e9 bytes (historical; the CLI only: `XVA_LEGACY`)

An export (`Format.export`) is an `Export`: its length when known in advance (raw, vhd: a Content-Length, and any
byte range through `pieces`), and `write_to` for a whole stream. An import (`Format.import_into`) writes through an
`ExactImport` in front of an upload, so afterwards the VDI reads exactly like the input, zero regions included.
Everything streams: memory is bounded by a block or a chunk whatever the disk size.

The VHD view of a VDI: its uuid is the VDI uuid (as the Transfer VM's expose_vhd did). A differencing view against
base B holds the blocks where the VDI may differ from B: when both are VHD chains, those allocated in the images
the two chains do not share (either side: a block B wrote after the fork must be reset to the VDI's content too);
otherwise every block allocated on either side. The parent is named `<B>.vhd` with uuid = B's VDI uuid, which is
the uuid of B's own dynamic view, so downloading `B.vhd` and `V.vhd?base=B` side by side gives a chain that opens.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import IO, Callable, Dict, Iterator, Optional, Protocol, cast

from smapi.transfer import xva
from smapi.transfer.disk import BLOCK, Disk
from smapi.transfer.exact import ExactImport
from smapi.transfer.xva import XvaFormatError
from smapi.vhd.errors import OutOfRange, UnsupportedImage, VhdError
from smapi.vhd.receive import VhdReceiver
from smapi.vhd.view import VhdView, build_view

TAR_PREFIX = "vdi"  # xapi's Xapi_globs.vdi_tar_export_dir for /export_raw_vdi?format=tar
PIECE = 1 << 20
Progress = Optional[Callable[[int], None]]


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class BaseMismatch(ValueError):
    """A differencing export against a base of another size."""


class Export:
    """One VDI rendered in a format. `length` is None when the stream's size is not known before it ends."""

    def __init__(self, content_type: str, length: Optional[int],
                 pieces: Optional[Callable[[int, int], Iterator[bytes]]] = None,
                 write: Optional[Callable[[Writable, Progress], object]] = None) -> None:
        self.content_type = content_type
        self.length = length
        self._pieces = pieces
        self._write = write

    def pieces(self, start: int = 0, end: Optional[int] = None) -> Iterator[bytes]:
        """The bytes [start, end) of the export (formats of known length only)."""
        assert self._pieces is not None and self.length is not None
        return self._pieces(start, self.length if end is None else min(end, self.length))

    def write_to(self, out: Writable, progress: Progress = None) -> None:
        if self._write is not None:
            self._write(out, progress)
            return
        for piece in self.pieces():
            out.write(piece)
            if progress:
                progress(len(piece))


class Format:
    name = ""
    content_type = "application/octet-stream"

    def export(self, disk: Disk, vdi: str, base: Optional[Disk] = None, base_uuid: str = "") -> Export:
        raise NotImplementedError

    def import_into(self, sink: ExactImport, stream: Readable, length: Optional[int],
                    progress: Progress = None) -> None:
        """Write the stream into the sink; afterwards the VDI reads like the input."""
        raise NotImplementedError


def disk_pieces(disk: Disk, start: int, end: int) -> Iterator[bytes]:
    pos = start
    while pos < end:
        n = min(PIECE, end - pos)
        yield disk.read(pos, n)
        pos += n


def _read_all(stream: Readable, progress: Progress) -> Iterator[bytes]:
    while True:
        data = stream.read(PIECE)
        if not data:
            return
        if progress:
            progress(len(data))
        yield data


class RawFormat(Format):
    name = "raw"

    def export(self, disk: Disk, vdi: str, base: Optional[Disk] = None, base_uuid: str = "") -> Export:
        return Export(self.content_type, disk.size, lambda a, b: disk_pieces(disk, a, b))

    def import_into(self, sink: ExactImport, stream: Readable, length: Optional[int],
                    progress: Progress = None) -> None:
        offset = 0
        for data in _read_all(stream, progress):
            sink.write(offset, data)
            offset += len(data)


class VhdFormat(Format):
    name = "vhd"
    content_type = "application/vhd"

    def export(self, disk: Disk, vdi: str, base: Optional[Disk] = None, base_uuid: str = "") -> Export:
        view = vhd_view(disk, vdi, base, base_uuid)
        return Export(self.content_type, view.length, view.pieces)

    def import_into(self, sink: ExactImport, stream: Readable, length: Optional[int],
                    progress: Progress = None) -> None:
        receiver = VhdReceiver(sink.size, sink.write, length=length)
        for data in _read_all(stream, progress):
            receiver.feed(data)
        finish_vhd(receiver, sink)


class TarFormat(Format):
    name = "tar"
    content_type = "application/x-tar"

    def export(self, disk: Disk, vdi: str, base: Optional[Disk] = None, base_uuid: str = "") -> Export:
        def write(out: Writable, progress: Progress) -> int:
            # tarfile only calls write() on its stream object
            return xva.write_tar_chunks(disk.read, disk.size, cast(IO[bytes], out), TAR_PREFIX, progress=progress)

        return Export(self.content_type, None, write=write)

    def import_into(self, sink: ExactImport, stream: Readable, length: Optional[int],
                    progress: Progress = None) -> None:
        # Checksums are verified chunk by chunk before each write; a corrupt chunk stops the import there.
        # tarfile's stream mode only calls read() on its stream object
        xva.read_tar_chunks(cast(IO[bytes], stream), sink.write, sink.size, None, progress=progress)
        sink.fill_gaps()  # the format leaves zero chunks out; the VDI may hold data there


class XvaLegacyFormat:
    """A directory of `chunk-%09d.gz` (historical; the CLI only): its export and import name a directory, not a
    stream, so it is not one of the stream `FORMATS`."""

    name = "xva-legacy"

    def export_to(self, read: Callable[[int, int], bytes], size: int, directory: str,
                  progress: Progress = None) -> int:
        """Write the chunks of a disk read through `read`; returns the number of chunks."""
        return xva.write_legacy_chunks(read, size, directory, progress=progress)

    def import_from(self, sink: ExactImport, directory: str, progress: Progress = None) -> int:
        """Write the chunks into the sink (gzip CRCs verified); returns the bytes written."""
        written = xva.read_legacy_chunks(directory, sink.write, sink.size, progress=progress)
        sink.fill_gaps()  # the reader leaves zero runs out
        return written


FORMATS: Dict[str, Format] = {f.name: f for f in (RawFormat(), VhdFormat(), TarFormat())}
XVA_LEGACY = XvaLegacyFormat()
#: what the CLI offers: the stream formats and the legacy chunk directory
CLI_FORMATS = (*FORMATS, XVA_LEGACY.name)


def get(name: str) -> Optional[Format]:
    return FORMATS.get(name.lower())


# -- VHD -------------------------------------------------------------------------------------------------------------
def vhd_uuid(vdi_uuid: str) -> bytes:
    """The VHD uuid of a VDI's view: the VDI uuid itself (as the Transfer VM's expose_vhd did)."""
    try:
        return uuidlib.UUID(vdi_uuid).bytes
    except ValueError:
        return uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"smapi-vdi:{vdi_uuid}").bytes


def differing_blocks(disk: Disk, base: Disk) -> bytearray:
    """Blocks where `disk` may differ from `base` (metadata only when both are VHD chains)."""
    mine, theirs = disk.image_uuids(), base.image_uuids()
    if mine and theirs:
        shared = set(mine) & set(theirs)
        a = disk.blocks_of_images(set(mine) - shared)
        b = base.blocks_of_images(set(theirs) - shared)
    else:
        a, b = disk.allocation(), base.allocation()
    n = -(-disk.size // BLOCK)
    return bytearray(1 if (i < len(a) and a[i]) or (i < len(b) and b[i]) else 0 for i in range(n))


def vhd_view(disk: Disk, vdi: str, base: Optional[Disk] = None, base_uuid: str = "") -> VhdView:
    """The VDI as a dynamic VHD, or as a differencing VHD against `base`."""
    if base is None:
        return build_view(disk.size, disk.allocation(), disk.read, uid=vhd_uuid(vdi), block_size=BLOCK)
    if base.size != disk.size:
        raise BaseMismatch(f"base VDI {base_uuid} is {base.size} bytes, VDI {vdi} is {disk.size}: a differencing "
                           f"VHD needs equal sizes")
    return build_view(disk.size, differing_blocks(disk, base), disk.read, uid=vhd_uuid(vdi), block_size=BLOCK,
                      parent=(vhd_uuid(base_uuid), f"{base_uuid}.vhd"))


def finish_vhd(receiver: VhdReceiver, sink: ExactImport) -> None:
    """End a VHD import: refuse a truncated stream; a dynamic VHD is the whole disk, so what it leaves unmarked
    must read zero whatever the VDI held (a differencing one leaves unmarked sectors as they are)."""
    receiver.finish()
    if not receiver.is_differencing:
        sink.fill_gaps()


def vhd_status(e: VhdError) -> int:
    """The HTTP status for a refused VHD upload: 501 a fixed VHD, 416 blocks beyond the disk, else 400."""
    if isinstance(e, UnsupportedImage):
        return 501
    if isinstance(e, OutOfRange):
        return 416
    return 400


__all__ = ["FORMATS", "CLI_FORMATS", "XVA_LEGACY", "Format", "Export", "XvaFormatError", "BaseMismatch", "get",
           "vhd_view", "vhd_uuid", "finish_vhd", "vhd_status", "disk_pieces", "TAR_PREFIX"]
