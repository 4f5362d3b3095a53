"""Upload scratch images: writes that reach a VDI all together or not at all.

An upload (a whole-disk HTTP PUT, a BITS session, an import) must not leave half of its bytes in the VDI when the
client goes away. Its writes go into a *scratch*: a private differencing VHD on the SR, the size of the VDI, whose
sector bitmaps record exactly which bytes the upload wrote. Nothing reads through it but the upload itself
(unaligned edges are merged with the VDI's current bytes). When the body is complete and valid, `commit` copies
the marked sectors into the VDI through the caller's writable handle; otherwise `discard` deletes it. Only the
bytes written occupy space, so a small upload into a large disk stays cheap; a whole-disk upload is written twice
(scratch, then VDI), which is the price of atomicity without rewriting the VDI's chain.

Crash safety (journal op "upload", see `recovery`):

    step "receive"  written before the scratch exists: the upload has not been accepted -> remove the scratch
    step "commit"   written once the scratch is complete and durable: the upload was accepted -> copy it into the
                    VDI again (copying the same sectors twice is harmless), then remove the scratch

An upload runs for minutes without the SR lock, so an entry seen by someone holding the SR lock may belong to a
live upload. Its writer holds the VDI's lock exclusively (a writable data handle), so the entry is replayed only
by whoever can hold that lock exclusively and is not the upload itself (`_LIVE`); a VDI a datapath has activated
is left alone (the NBD server holds it open without the lock) until it is deactivated.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib
from typing import Any, Optional, Set

from smapi.sr.engine import Engine
from smapi.sr.journal import JournalEntry
from smapi.vhd import VhdImage, bitmaps
from smapi.vhd import constants as C
from smapi.vhd.create import create_sparse_on

OP = "upload"
SECTOR = C.SECTOR
COMMIT_EVERY = 1 << 30  # metadata written every GiB: dirty sector bitmaps stay under 256 KiB, few barriers
PARENT_NAME = "upload-target"  # a scratch is never opened as a chain: its parent locator is only a label

log = logging.getLogger(__name__)

_LIVE: Set[str] = set()  # scratch volumes of this process that are in use (or being replayed)
_LIVE_LOCK = threading.Lock()


class ScratchClosed(Exception):
    """The scratch was committed or discarded already (e.g. the exposure is shutting down)."""


class Scratch:
    """A pending upload into one VDI. `target` has `read`, `write`, `flush` (the writer's own data handle)."""

    def __init__(self, engine: Engine, vdi: str, target: Any, entry: JournalEntry, image: VhdImage) -> None:
        self.engine = engine
        self.vdi = vdi
        self.target = target
        self.entry = entry
        self.volume: str = entry.data["volume"]
        self.size = image.virtual_size
        self._image: Optional[VhdImage] = image
        self._lock = threading.Lock()
        self._unsaved = 0

    # -- writing ----------------------------------------------------------------------------------------------
    def write(self, offset: int, data: bytes) -> None:
        n = len(data)
        if n == 0:
            return
        if offset < 0 or offset + n > self.size:
            raise ValueError(f"{n} bytes at {offset} fall outside the {self.size}-byte VDI")
        with self._lock:
            img = self._open()
            start = offset - offset % SECTOR
            end = -(-(offset + n) // SECTOR) * SECTOR
            if start != offset or end != offset + n:
                # Partial head/tail sectors keep the bytes the upload did not send: ours if written, else the VDI's.
                merged = bytearray(end - start)
                merged[:SECTOR] = self._sector(img, start)
                if end - SECTOR > start:
                    merged[-SECTOR:] = self._sector(img, end - SECTOR)
                merged[offset - start: offset - start + n] = data
                data = bytes(merged)
            img.write_at(start, data)
            self._unsaved += len(data)
            if self._unsaved >= COMMIT_EVERY:
                img.commit()
                self._unsaved = 0

    def read(self, offset: int, length: int) -> bytes:
        """The VDI as the upload would leave it (sector-wise: the scratch where written, else the VDI)."""
        with self._lock:
            img = self._open()
            out = bytearray()
            pos = offset - offset % SECTOR
            while pos < offset + length:
                out += self._sector(img, pos)
                pos += SECTOR
            skip = offset % SECTOR
            return bytes(out[skip: skip + length])

    def _sector(self, img: VhdImage, pos: int) -> bytes:
        blk, inb = divmod(pos, img.block_size)
        data_off = img.block_data_offset(blk)
        if data_off is not None and bitmaps.test_bit(img.bitmap(blk), inb // SECTOR):
            buf = bytearray(SECTOR)
            img.read_raw(memoryview(buf), data_off + inb)
            return bytes(buf)
        want = min(SECTOR, self.size - pos)
        return self.target.read(pos, want) + bytes(SECTOR - want)

    def _open(self) -> VhdImage:
        if self._image is None:
            raise ScratchClosed(f"the upload into VDI {self.vdi} was already committed or discarded")
        return self._image

    # -- the end ----------------------------------------------------------------------------------------------
    def commit(self) -> int:
        """Make the upload part of the VDI; returns the bytes applied. After the journal says "commit", a failure
        leaves the scratch for recovery to finish (the upload was accepted) and raises.

        A VDI that a datapath activated since the upload began (a VM started on it: the datapath verbs do not
        take the VDI lock) is refused (VDIInUse) and the upload dropped: landing it would change a running VM's
        disk under it. The check is made under the SR lock, which the datapath verbs hold."""
        from smapi.sr.serving import refuse_if_active

        with self._lock:
            img = self._open()
            try:
                with self.engine.sr_lock().hold():
                    refuse_if_active(self.engine, self.vdi, "landing an upload")
            except BaseException:
                self._image = None
                try:
                    img.close()
                finally:
                    self._drop()
                raise
            img.commit()
            img.backing.flush()
            self.engine.journal.update(self.entry, step="commit")
            self._image = None
            try:
                applied = apply(img, self.target)
                self.target.flush()
            except BaseException:
                img.close()
                _unmark(self.volume)  # recovery replays it once this process lets go of the VDI
                raise
            img.close()
            self._drop()
            return applied

    def discard(self) -> None:
        with self._lock:
            if self._image is None:
                return
            img, self._image = self._image, None
            try:
                img.close()
            finally:
                self._drop()

    def _drop(self) -> None:
        with self.engine.sr_lock().hold():
            self.engine.substrate.remove_volume(self.volume)
            self.engine.journal.end(self.entry)
        _unmark(self.volume)


def begin(engine: Engine, vdi: str, size: int, target: Any) -> Scratch:
    """A new scratch for an upload into `vdi` (whose writable handle the caller holds)."""
    volume = engine.volume_of(f"upload-{uuidlib.uuid4()}", "vhd")
    _mark(volume)
    try:
        with engine.sr_lock().hold():
            entry = engine.journal.begin(OP, vdi=vdi, volume=volume, step="receive")
        backing = engine.substrate.create_volume(volume, 0)
        try:
            # Differencing, so that only the sectors written are marked (a dynamic image marks whole blocks).
            # Its parent uuid is a fresh one (a null uuid means "raw parent" to VHD readers): nothing resolves it.
            create_sparse_on(backing, size, parent=(uuidlib.uuid4().bytes, 0, PARENT_NAME), round_to_block=False)
            image = VhdImage.open(backing, name=volume, writable=True)
        except BaseException:
            backing.close()
            raise
    except BaseException:
        _unmark(volume)
        raise
    return Scratch(engine, vdi, target, entry, image)


def apply(img: VhdImage, target: Any) -> int:
    """Write every sector marked in `img` into `target` at the same offset; the number of bytes written."""
    bs = img.block_size
    spb = img.sectors_per_block
    done = 0
    for blk, entry in enumerate(img.bat):
        if entry == C.BAT_UNUSED or blk * bs >= img.virtual_size:
            continue
        data_off = img.block_data_offset(blk)
        assert data_off is not None
        vlen = min(bs, img.virtual_size - blk * bs)
        bits = bitmaps.bit_string(img.bitmap(blk), spb)
        for a, z, is_set in bitmaps.runs(bits, 0, -(-vlen // SECTOR)):
            if not is_set:
                continue
            lo, hi = a * SECTOR, min(z * SECTOR, vlen)
            buf = bytearray(hi - lo)
            img.read_raw(memoryview(buf), data_off + lo)
            target.write(blk * bs + lo, bytes(buf))
            done += hi - lo
    return done


# ------------------------------------------------------------------------------------------------ recovery
def replay(engine: Engine, entry: JournalEntry) -> bool:
    """Finish or drop a dead upload (the caller holds the SR lock). False when it may be alive: left as it is."""
    from smapi.interface.errors import Backend_error, Vdi_does_not_exist
    from smapi.sr.access import open_vdi

    vdi, volume = entry.data["vdi"], entry.data["volume"]
    with _LIVE_LOCK:
        if volume in _LIVE:
            return False
        _LIVE.add(volume)  # also keeps the open_vdi below from replaying this entry again
    try:
        lock = engine.vdi_lock(vdi)
        if lock.held() and not lock.held_exclusively():
            return False  # we read the VDI; copying into it now would change it under our own feet
        if not lock.acquire(timeout=0):
            return False  # its writer (or another user of the VDI) is alive
        try:
            if entry.data.get("step") == "commit" and engine.substrate.volume_exists(volume):
                try:
                    handle = open_vdi(engine, vdi, writable=True)
                except Vdi_does_not_exist:
                    handle = None
                except Backend_error as e:
                    log.info("upload into VDI %s: its commit waits: %s", vdi, e)
                    return False
                if handle is not None:
                    with handle:
                        img = VhdImage.open(engine.substrate.open_volume(volume), name=volume, writable=False)
                        try:
                            applied = apply(img, handle)
                        finally:
                            img.close()
                        handle.flush()
                    log.info("upload into VDI %s: finished an accepted upload (%d bytes)", vdi, applied)
            engine.substrate.remove_volume(volume)
            engine.journal.end(entry)
            return True
        finally:
            lock.release()
    finally:
        _unmark(volume)


def _mark(volume: str) -> None:
    with _LIVE_LOCK:
        _LIVE.add(volume)


def _unmark(volume: str) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(volume)
