"""The two XVA disk encodings: the current tar of 1 MiB chunks and the legacy directory of gzipped 1e9-byte chunks.

Both stream: memory is bounded by one chunk whatever the disk size. A disk is reached through two callables,
`read(offset, length) -> bytes` for export and `write(offset, data)` for import, so the same code serves a VDI,
a raw file or a test bytearray.

Current format (xapi's Stream_vdi): members `<prefix>/<%08d>` of at most 1 MiB, each followed by
`<prefix>/<%08d>.xxhash` holding `%016X` of XXH64 (older exports: `.checksum` = SHA-1 hex). All-zero chunks are
left out except the first and the last; a missing sequence number on import stands for one zero chunk of the
first chunk's length. A 0-byte member is a keep-alive and advances nothing. Sequence numbers strictly increase.

Legacy format: a directory with `chunk-<%09d>.gz`, each the gzip of exactly 1e9 bytes (the last may be shorter).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
from typing import IO, Callable, Iterator, Optional, Tuple

import xxhash

from smapi.common.files import atomic_writer
from smapi.interface.errors import Backend_error

CHUNK = 1 << 20
LEGACY_CHUNK = 1_000_000_000

Reader = Callable[[int, int], bytes]
Writer = Callable[[int, bytes], None]
Progress = Optional[Callable[[int], None]]

_MEMBER = re.compile(r"^(?P<prefix>.+)/(?P<seq>\d{8})(?P<suffix>\.xxhash|\.checksum)?$")


class XvaFormatError(Backend_error):
    """A malformed or corrupt XVA disk stream; the message says which member and why."""

    def __init__(self, message: str) -> None:
        super().__init__("SR_BACKEND_FAILURE_202", ["", f"invalid XVA disk data: {message}", ""])


def xxhash_hex(data: bytes) -> str:
    return f"{xxhash.xxh64(data).intdigest():016X}"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_tar_chunks(read: Reader, size: int, out: IO[bytes], prefix: str = "Ref:1",
                     progress: Progress = None) -> int:
    """Write the disk as chunk members to the tar stream `out`; returns the number of chunks written."""
    written = 0
    zero = bytes(CHUNK)
    last_seq = max(0, (size - 1) // CHUNK)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for seq, offset in enumerate(range(0, max(size, 1), CHUNK)):
            data = read(offset, min(CHUNK, size - offset)) if size else b""
            if seq not in (0, last_seq) and data == zero[: len(data)]:
                if progress:
                    progress(len(data))
                continue
            _add(tar, f"{prefix}/{seq:08d}", data)
            _add(tar, f"{prefix}/{seq:08d}.xxhash", xxhash_hex(data).encode())
            written += 1
            if progress:
                progress(len(data))
    return written


def iter_tar_chunks(stream: IO[bytes], prefix: Optional[str] = None) -> Iterator[Tuple[int, bytes]]:
    """Yield (offset, data) for every chunk of the disk in a tar stream, checksums verified.

    Zero chunks that the exporter left out are not yielded (the target reads zero already, or the caller writes
    zeros); offsets account for them.
    """
    offset = 0
    previous_seq = -1
    first_len: Optional[int] = None
    pending: Optional[Tuple[int, bytes, str]] = None  # (seq, data, member name) awaiting its checksum
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - entered just below, after the error check
    except tarfile.TarError as e:
        raise XvaFormatError(f"not a tar stream: {e}") from None
    with tar:
        while True:
            try:
                member = tar.next()
            except tarfile.TarError as e:
                raise XvaFormatError(f"truncated or corrupt tar stream: {e}") from None
            if member is None:
                break
            m = _MEMBER.match(member.name)
            if m is None or (prefix is not None and m.group("prefix") != prefix):
                continue  # ova.xml and other disks' members
            if not member.isfile():
                raise XvaFormatError(f"{member.name} is not a regular file")
            if member.size > CHUNK and not m.group("suffix"):
                raise XvaFormatError(f"{member.name} is {member.size} bytes; chunks are at most {CHUNK}")
            if member.size > 64 and m.group("suffix"):
                raise XvaFormatError(f"{member.name}: checksum member too large")
            try:
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
            except (tarfile.TarError, EOFError, OSError) as e:
                raise XvaFormatError(f"{member.name}: truncated or unreadable ({e})") from None
            if len(data) != member.size:
                raise XvaFormatError(f"{member.name}: truncated ({len(data)} of {member.size} bytes)")
            seq = int(m.group("seq"))
            if m.group("suffix"):
                if pending is None or pending[0] != seq:
                    raise XvaFormatError(f"{member.name} has no data member before it")
                _verify(pending[2], pending[1], m.group("suffix"), data)
                yield offset, pending[1]
                offset += len(pending[1])
                pending = None
                continue
            if pending is not None:
                raise XvaFormatError(f"{pending[2]} has no checksum member")
            if seq <= previous_seq:
                raise XvaFormatError(f"{member.name}: sequence numbers must increase (after {previous_seq:08d})")
            if first_len is None:
                first_len = len(data)
            # Left-out zero chunks: one chunk of the first chunk's length per missing sequence number.
            offset += (seq - previous_seq - 1) * first_len
            previous_seq = seq
            # A 0-byte member is a keep-alive: it advances nothing but still carries a checksum member.
            pending = (seq, data, member.name)
    if pending is not None:
        raise XvaFormatError(f"{pending[2]} has no checksum member")


def _verify(name: str, data: bytes, suffix: str, checksum: bytes) -> None:
    text = checksum.decode("ascii", "replace").strip()
    if suffix == ".xxhash":
        expected = xxhash_hex(data)
        ok = text.upper() == expected
    else:
        expected = hashlib.sha1(data).hexdigest()
        ok = text.lower() == expected
    if not ok:
        raise XvaFormatError(f"{name}: checksum mismatch (stored {text[:40]!r}, data gives {expected!r})")


def read_tar_chunks(stream: IO[bytes], write: Writer, size: Optional[int] = None, prefix: Optional[str] = None,
                    progress: Progress = None) -> int:
    """Import a chunk stream into `write`; returns the number of bytes the stream described."""
    end = 0
    for offset, data in iter_tar_chunks(stream, prefix):
        if size is not None and offset + len(data) > size:
            raise XvaFormatError(f"data at offset {offset} goes past the disk's {size} bytes")
        write(offset, data)
        end = offset + len(data)
        if progress:
            progress(len(data))
    return end


def write_legacy_chunks(read: Reader, size: int, directory: str, progress: Progress = None) -> int:
    """Write `chunk-<%09d>.gz` files of 1e9 bytes each (the last may be shorter); returns how many."""
    os.makedirs(directory, exist_ok=True)
    count = 0
    for index, start in enumerate(range(0, max(size, 1), LEGACY_CHUNK)):
        end = min(size, start + LEGACY_CHUNK)
        path = os.path.join(directory, f"chunk-{index:09d}.gz")
        with atomic_writer(path) as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1) as gz:
            for offset in range(start, end, CHUNK):
                data = read(offset, min(CHUNK, end - offset))
                gz.write(data)
                if progress:
                    progress(len(data))
        count += 1
    return count


def read_legacy_chunks(directory: str, write: Writer, size: Optional[int] = None, progress: Progress = None) -> int:
    """Import a legacy chunk directory into `write`; returns the bytes read. Zero runs are written too: only the
    writer knows whether its disk already reads zero there (`smapi.transfer.exact`)."""
    names = sorted(n for n in os.listdir(directory) if re.fullmatch(r"chunk-\d{9}\.gz", n))
    if not names:
        raise XvaFormatError(f"no chunk-NNNNNNNNN.gz files in {directory}")
    offset = 0
    for expected, name in enumerate(names):
        if name != f"chunk-{expected:09d}.gz":
            raise XvaFormatError(f"missing chunk-{expected:09d}.gz (found {name})")
        chunk_start = offset
        try:
            with gzip.open(os.path.join(directory, name), "rb") as gz:
                while True:
                    data = gz.read(CHUNK)
                    if not data:
                        break
                    if size is not None and offset + len(data) > size:
                        raise XvaFormatError(f"{name} goes past the disk's {size} bytes")
                    write(offset, data)  # every byte: the writer knows whether a zero run may be left out
                    offset += len(data)
                    if progress:
                        progress(len(data))
        except (OSError, EOFError) as e:
            raise XvaFormatError(f"{name}: {e}") from None
        if offset - chunk_start != LEGACY_CHUNK and expected != len(names) - 1:
            raise XvaFormatError(f"{name} holds {offset - chunk_start} bytes; every chunk but the last holds 1e9")
    return offset
