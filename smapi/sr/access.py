"""Data access for tools (vdi-import/export, copy, demo): `open_vdi` returns a handle with `read`, `write`,
`flush`, `close` and `size`; a writable one also gives `upload_scratch()`, where an upload collects its writes
until they land in the VDI all at once (`smapi.sr.scratch`).

A handle holds the VDI's lock for as long as it is open (exclusive when writable, shared when read-only), so no
snapshot or compose can move the VDI's data to another volume under a writer's feet.

A writable handle is refused (VDIInUse) while a datapath of this host has the VDI activated: the datapath's NBD
server holds the image open without the VDI lock (a VM's disk), and a second writer would corrupt it. The check
runs under the SR lock, which every datapath verb holds while it changes the states. Readers are allowed (they
see the data the server has flushed).
"""

from __future__ import annotations

import os
import stat
from typing import Any, Optional

from smapi.interface.errors import Backend_error
from smapi.sr.engine import Engine
from smapi.sr.errors import data_write_errors, mapped_errors
from smapi.sr.locks import FileLock
from smapi.sr.scratch import Scratch, begin
from smapi.sr.vdi_servers import refuse_if_active
from smapi.vhd import Backing, Chain, open_chain


class VdiHandle:
    """Common part: size, lock release on close, context manager."""

    size: int = 0

    def __init__(self, lock: FileLock) -> None:
        self._lock: Optional[FileLock] = lock
        self._writer: Optional[FileLock] = None  # RunState.writer_lock, for writable handles
        self._engine: Optional[Engine] = None
        self.vdi = ""
        self.writable = False

    def upload_scratch(self, target: Any = None) -> Scratch:
        """A scratch collecting an upload's writes until it commits into this VDI (`smapi.sr.scratch`).

        `target` is what the commit writes through (default: this handle; a caller sharing the handle between
        threads passes its own locked wrapper)."""
        if self._engine is None or not self.writable or self._lock is None:
            raise ValueError("an upload scratch needs an open writable handle")
        return begin(self._engine, self.vdi, self.size, target if target is not None else self, handle=self)

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> VdiHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()  # type: ignore[attr-defined]


class ChainHandle(VdiHandle):
    def __init__(self, chain: Chain, leaf: Backing, lock: FileLock) -> None:
        super().__init__(lock)
        self.chain: Optional[Chain] = chain
        self.leaf = leaf  # the chain does not own a backing it was given
        self.size = chain.size
        #: set when an upload left an upload base under the leaf: the collector is told once the VDI is free
        self.collect_on_close = False

    def suspend(self) -> None:
        """Flush and close the images: an upload is about to put its scratch in the leaf's place."""
        chain, self.chain = self.chain, None
        if chain is not None:
            try:
                chain.flush()
            finally:
                chain.close()
                self.leaf.close()

    def resume(self) -> None:
        """Open the VDI's chain again (after `suspend`): the leaf volume's name is the same, its image new."""
        assert self._engine is not None
        engine = self._engine
        with mapped_errors(f"reopening VDI {self.vdi}"):
            rec = engine.visible(engine.load(), self.vdi)
            leaf = engine.substrate.open_volume(rec.volume, writable=self.writable)
            try:
                self.chain = open_chain(leaf, resolver=engine.substrate.resolver(), writable=self.writable)
            except BaseException:
                leaf.close()
                raise
            self.leaf = leaf

    def read(self, offset: int, length: int) -> bytes:
        return self.chain.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        with data_write_errors(f"writing VDI {self.vdi}"):
            self.chain.write(offset, data)

    def flush(self) -> None:
        with data_write_errors(f"flushing VDI {self.vdi}"):
            self.chain.flush()

    def close(self) -> None:
        try:
            if self.chain is not None:  # None after a failed `resume`
                self.chain.close()
                self.leaf.close()
        finally:
            self._release()
        if self.collect_on_close and self._engine is not None:
            self.collect_on_close = False
            self._engine.after_change()  # leaf-coalesce skips a VDI while its handle is open


class RawHandle(VdiHandle):
    def __init__(self, backing: Backing, size: int, lock: FileLock) -> None:
        super().__init__(lock)
        self.backing = backing
        self.size = size

    def _bounds(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{length} bytes at {offset} fall outside the {self.size}-byte VDI")

    def read(self, offset: int, length: int) -> bytes:
        self._bounds(offset, length)
        data = self.backing.pread(length, offset)
        return data + bytes(length - len(data))

    def write(self, offset: int, data: bytes) -> None:
        self._bounds(offset, len(data))
        with data_write_errors(f"writing VDI {self.vdi}"):
            self.backing.pwrite(data, offset)

    def flush(self) -> None:
        with data_write_errors(f"flushing VDI {self.vdi}"):
            self.backing.flush()

    def allocate(self, offset: int, length: int) -> bool:
        """Allocate the file's blocks for a range, keeping its bytes (an upload making room before it is accepted,
        `scratch.reserve`). Only for a regular file: False for anything else (a block device is provisioned in
        full, and glibc's fallback for it would write zeros over data)."""
        self._bounds(offset, length)
        fd = getattr(self.backing, "fd", None)
        if fd is None or not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with data_write_errors(f"allocating VDI {self.vdi}"):
            os.posix_fallocate(fd, offset, length)
        return True

    def close(self) -> None:
        try:
            self.backing.close()
        finally:
            self._release()


def open_vdi(engine: Engine, vdi: str, *, writable: bool = False) -> VdiHandle:
    lock = engine.vdi_lock(vdi)
    with mapped_errors(f"opening VDI {vdi}"):
        lock.acquire(exclusive=writable)
    try:
        with mapped_errors(f"opening VDI {vdi}"), engine.sr_lock().hold():
            engine.recover(reading=not writable)
            rec = engine.visible(engine.load(), vdi)
            if writable and rec.read_only:
                raise Backend_error.classic("VDIUnavailable", f"VDI {vdi} is read-only; write into a clone of it "
                                                              f"(VDI.clone)")
            if writable:
                refuse_if_active(engine, vdi, "opening it for writing")
                # Under the SR lock like activate's probe of it: a datapath and a writer never both start.
                writer = engine.run.writer_lock(engine.sr, vdi)
                if not writer.acquire(exclusive=True, timeout=0):
                    raise Backend_error.classic("VDIInUse", f"VDI {vdi} is already open for writing on this host")
            else:
                writer = None
            try:
                backing = engine.substrate.open_volume(rec.volume, writable=writable)
            except BaseException:
                if writer is not None:
                    writer.release()
                raise
            handle: VdiHandle
            if rec.format == "raw":
                handle = RawHandle(backing, rec.virtual_size, lock)
            else:
                try:
                    chain = open_chain(backing, resolver=engine.substrate.resolver(), writable=writable)
                except BaseException:
                    backing.close()
                    if writer is not None:
                        writer.release()
                    raise
                handle = ChainHandle(chain, backing, lock)
            handle._engine, handle.vdi, handle.writable, handle._writer = engine, vdi, writable, writer
            return handle
    except BaseException:
        lock.release()
        raise
