"""One exposed disk: a driver data handle made safe for several server threads.

The SR engine's handles (a VHD chain or a raw volume) are not thread-safe, and an HTTP server serves up to a few
clients at once, so every access goes through one lock. `generation` counts writes, so cached views of the disk
(the VHD view's layout) know when they are stale.

Uploads do not write into the disk directly: `begin_upload` gives a scratch (`smapi.sr.scratch`) that collects
the writes and lands them in the VDI at `commit`, or drops them at `discard`, so a client that goes away
mid-body leaves the VDI as it was. Uploads still open when the disk closes (the exposure stops) are discarded.
A large upload into a VHD VDI lands by becoming the VDI's leaf: the scratch holds `exclusive()` meanwhile, while
the handle reopens the new chain, and the bumped `generation` tells cached views that the chain changed.
A driver whose handles offer no scratch gets direct writes (`DirectUpload`: not atomic).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, List, Optional, Set

BLOCK = 2 << 20  # the VHD block size, and the unit of the allocation map


class Disk:
    def __init__(self, handle: Any, writable: bool) -> None:
        self._handle = handle
        self._lock = threading.Lock()
        self.writable = writable
        self.size: int = int(handle.size)
        self.generation = 0
        self._uploads: Set[Any] = set()
        self._uploads_lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        with self._lock:
            return self._handle.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        if not data:
            return
        if not self.writable:
            raise PermissionError("the disk is exposed read-only")
        with self._lock:
            self._handle.write(offset, data)
            self.generation += 1

    def allocate(self, offset: int, length: int) -> bool:
        """Allocate storage for a range without changing what it reads, if the handle can (see `scratch.reserve`)."""
        allocate = getattr(self._handle, "allocate", None)
        if allocate is None:
            return False
        with self._lock:
            return bool(allocate(offset, length))

    def flush(self) -> None:
        if self.writable:
            with self._lock:
                self._handle.flush()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No other thread touches the handle meanwhile (an upload swaps the VDI's leaf under it)."""
        with self._lock:
            try:
                yield
            finally:
                self.generation += 1

    def close(self) -> None:
        with self._uploads_lock:
            pending, self._uploads = list(self._uploads), set()
        for upload in pending:
            upload.discard()
        with self._lock:
            self._handle.close()

    # -- uploads --------------------------------------------------------------------------------------------------
    def begin_upload(self) -> Upload:
        if not self.writable:
            raise PermissionError("the disk is exposed read-only")
        make = getattr(self._handle, "upload_scratch", None)
        scratch = make(target=self) if make is not None else DirectUpload(self)
        upload = Upload(self, scratch)
        with self._uploads_lock:
            self._uploads.add(upload)
        return upload

    def _forget(self, upload: Upload) -> None:
        with self._uploads_lock:
            self._uploads.discard(upload)

    # -- metadata used by the VHD view ------------------------------------------------------------------------
    @property
    def chain(self) -> Optional[Any]:
        """The VHD chain behind the handle, or None for a raw VDI."""
        return getattr(self._handle, "chain", None)

    def allocation(self, block_size: int = BLOCK) -> bytearray:
        """One byte per block: 1 where the disk may hold data.

        A VHD chain answers from its BATs; a raw VDI has no allocation metadata, so its blocks are read and the
        all-zero ones left out (one pass over the disk, one block in memory).
        """
        nblocks = -(-self.size // block_size)
        chain = self.chain
        if chain is not None and chain.block_size == block_size:
            with self._lock:
                return chain.allocation_map()
        out = bytearray(nblocks)
        zero = bytes(block_size)
        for blk in range(nblocks):
            n = min(block_size, self.size - blk * block_size)
            if self.read(blk * block_size, n) != zero[:n]:
                out[blk] = 1
        return out

    def image_uuids(self) -> List[bytes]:
        """Uuids of the chain's images, leaf first (empty for a raw VDI)."""
        chain = self.chain
        return [img.uuid for img in chain.images] if chain is not None else []

    def blocks_of_images(self, uuids: set, block_size: int = BLOCK) -> bytearray:
        """Blocks allocated in the chain's images whose uuid is in `uuids` (metadata only)."""
        chain = self.chain
        if chain is None:
            return bytearray(-(-self.size // block_size))
        with self._lock:
            return chain.allocation_map(block_size, only=uuids)


class Upload:
    """One upload into a Disk: `write`/`read`/`size` like the disk, then exactly one of `commit` or `discard`."""

    def __init__(self, disk: Disk, scratch: Any) -> None:
        self.disk = disk
        self.size = disk.size
        self._scratch = scratch

    def write(self, offset: int, data: bytes) -> None:
        self._scratch.write(offset, data)

    def read(self, offset: int, length: int) -> bytes:
        return self._scratch.read(offset, length)

    def commit(self) -> None:
        self.disk._forget(self)
        self._scratch.commit()

    def discard(self) -> None:
        self.disk._forget(self)
        self._scratch.discard()


class DirectUpload:
    """Writes straight into the disk (drivers without upload scratches): a cut-off upload stays half-written."""

    def __init__(self, disk: Disk) -> None:
        self.disk = disk

    def write(self, offset: int, data: bytes) -> None:
        self.disk.write(offset, data)

    def read(self, offset: int, length: int) -> bytes:
        return self.disk.read(offset, length)

    def commit(self) -> None:
        self.disk.flush()

    def discard(self) -> None:
        self.disk.flush()
