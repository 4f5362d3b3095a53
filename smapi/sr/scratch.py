"""Upload scratch images: writes that reach a VDI all together or not at all.

An upload (a whole-disk HTTP PUT, a BITS session, a vdi-import) must not leave half of its bytes in the VDI when
the client goes away. Its writes go into a *scratch*: a private differencing VHD on the SR, the size of the VDI,
whose sector bitmaps record exactly which bytes the upload wrote. Nothing reads through it but the upload itself
(unaligned edges are merged with the VDI's current bytes). When the body is complete and valid, `commit` lands
it; otherwise `discard` deletes it. Only the bytes written occupy space.

Landing (`commit`), chosen from metadata once the scratch is complete:

* **in place** (`smapi.sr.relink`, O(metadata)): for a VHD VDI whose upload wrote at least `relink_min()` bytes
  (64 MiB; `SMAPI_UPLOAD_RELINK_MIN` overrides it). The scratch is created as a real child of the VDI's leaf, so
  it can *become* the leaf: it replaces the old leaf outright when it covers every sector the old leaf held
  (a whole-disk PUT: re-pointed at the old leaf's parent, or made a dynamic image when there is none; nothing
  is left to merge, the chain does not grow), else the old
  leaf becomes a hidden "upload base" under it, as a snapshot split makes, and the collector's leaf-coalesce
  merges it once the VDI is idle (the writer's handle schedules a collection when it closes). The data is
  written once, at upload speed.
* **copy**: the marked sectors are copied into the VDI through the caller's writable handle (`apply`). Used for
  raw VDIs (no differencing child possible), reset-on-boot VDIs, small uploads (a copy of a few MiB costs less
  than a chain level and a later coalesce), and when `MAX_UPLOAD_BASES` upload bases already sit above the leaf
  (uploads into a VDI kept busy, where no leaf-coalesce can run) or the chain is at the depth limit: repeated
  uploads never make a VDI hit code 109.

While the scratch lands in place, the writer's handle lets go of its images (`suspend`) and opens the VDI's new
chain afterwards (`resume`); the target's `exclusive()` (the transfer `Disk`) keeps its other threads out. The
in-use check, the acceptance and the whole in-place landing run under one SR lock hold, so no datapath can start
serving the old leaf in between.

Crash safety (journal op "upload", replayed by `replay`):

    step "receive"  written before the scratch exists: the upload has not been accepted -> remove the scratch
    step "commit"   written once the scratch is complete and durable (and, to be copied, once room for the copy
                    is made in the VDI, `reserve`): the upload was accepted -> copy it into the VDI again
                    (copying the same sectors twice is harmless), then remove the scratch
    step "relink"/"replace"  the in-place landing was decided: roll it forward (`relink.finish`, idempotent)

Fault points: upload.accepted (after "commit"), upload.decided, then relink's upload.renamed/hidden/swapped/
recorded or replace's upload.reparented/swapped.

An upload runs for minutes without the SR lock, so an entry seen by someone holding the SR lock may belong to a
live upload. Its writer holds the VDI's lock exclusively (a writable data handle), so the entry is replayed only
by whoever can hold that lock exclusively and is not the upload itself (`_LIVE`); a VDI a datapath has activated
is left alone (the NBD server holds it open without the lock) until it is deactivated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid as uuidlib
from typing import Any, Dict, Iterator, Optional, Set, Tuple

from smapi.interface.errors import Backend_error, Vdi_does_not_exist
from smapi.sr import relink
from smapi.sr.engine import Engine, new_uuid
from smapi.sr.errors import data_write_errors, mapped_errors
from smapi.sr.faults import fault_point
from smapi.sr.journal import REPLAYERS, JournalEntry
from smapi.sr.vdi_servers import refuse_if_active
from smapi.vhd import VhdImage, bitmaps
from smapi.vhd import constants as C
from smapi.vhd.create import create_child_on, create_sparse_on

OP = "upload"
SECTOR = C.SECTOR
COMMIT_EVERY = 1 << 30  # metadata written every GiB: dirty sector bitmaps stay under 256 KiB, few barriers
PARENT_NAME = "upload-target"  # a raw VDI's scratch is never opened as a chain: its parent locator is a label
RELINK_MIN = 64 << 20  # smaller uploads are copied (see the module docstring)
RELINK_ENV = "SMAPI_UPLOAD_RELINK_MIN"

log = logging.getLogger(__name__)

_LIVE: Set[str] = set()  # scratch volumes of this process that are in use (or being replayed)
_LIVE_LOCK = threading.Lock()


def relink_min() -> int:
    value = os.environ.get(RELINK_ENV, "")
    return int(value) if value.strip().isdigit() else RELINK_MIN


class ScratchClosed(Exception):
    """The scratch was committed or discarded already (e.g. the exposure is shutting down)."""


class Scratch:
    """A pending upload into one VDI. `target` has `read`, `write`, `flush` (the writer's own data handle);
    `handle` is the writer's VDI handle when the scratch may land in place (it has `chain`, `suspend`, `resume`)."""

    def __init__(self, engine: Engine, vdi: str, target: Any, entry: JournalEntry, image: VhdImage,
                 handle: Any = None) -> None:
        self.engine = engine
        self.vdi = vdi
        self.target = target
        self.handle = handle
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
            with data_write_errors(f"the upload into VDI {self.vdi}"):
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

        A VDI that a datapath activated since the upload began is refused (VDIInUse) and the upload dropped:
        landing it would change a running VM's disk under it. (VDI.activate already refuses while the uploader's
        writable handle is open, `vdi_servers.refuse_if_open_for_writing`; this is the second line, for a handle that
        is not the writer.) The check is made under the SR lock, which the datapath verbs hold."""
        with self._lock:
            img = self._open()
            img.commit()
            img.backing.flush()  # durable before the journal can call it accepted
            refused: Optional[BaseException] = None
            how: Optional[Dict[str, Any]] = None
            # The in-place landing keeps the target's other threads out while the handle lets go of the leaf.
            exclusive = getattr(self.target, "exclusive", None) if self.handle is not None else None
            # One SR lock hold from the in-use check to the end of an in-place landing: no datapath can start on
            # the VDI in between (the datapath verbs hold the SR lock).
            with exclusive() if exclusive is not None else contextlib.nullcontext(), self.engine.sr_lock().hold():
                try:
                    refuse_if_active(self.engine, self.vdi, "landing an upload")
                except BaseException as e:
                    refused = e
                if refused is None:
                    how = self._in_place(img)
                    if how is not None:
                        self.engine.journal.update(self.entry, step="commit")
                        fault_point("upload.accepted")
                        self._image = None
                        img.close()
                        self._land_in_place(how)
            if refused is not None:
                self._image = None
                self._drop(img)
                raise refused
            self._image = None
            if how is not None:
                _unmark(self.volume)
                if how["step"] == "relink":
                    # The collector merges the upload base once the VDI is idle: when the writer closes it.
                    self.handle.collect_on_close = True
                return int(how["bytes"])
            self._accept_copy(img)
            try:
                applied = apply(img, self.target)
                self.target.flush()
            except BaseException:
                img.close()
                _unmark(self.volume)  # recovery replays it once this process lets go of the VDI
                raise
            self._drop(img)
            return applied

    def _accept_copy(self, img: VhdImage) -> None:
        """Make room for the copy, then accept the upload (journal step "commit"). Failing here (e.g. SRNoSpace)
        drops the upload with the VDI unchanged; once accepted, the copy cannot run out of space, and only an
        I/O error could stop it (the replay then finishes the accepted upload)."""
        try:
            with mapped_errors(f"making room for the upload into VDI {self.vdi}"):
                reserve(img, self.target)
                with self.engine.sr_lock().hold():
                    self.engine.journal.update(self.entry, step="commit")
        except BaseException:
            self._drop(img)
            raise
        fault_point("upload.accepted")

    def _in_place(self, img: VhdImage) -> Optional[Dict[str, Any]]:
        """The journal data of an in-place landing, or None to copy (see the module docstring). The caller
        holds the SR lock."""
        chain = getattr(self.handle, "chain", None)
        base_volume = self.entry.data.get("base_volume")
        written = relink.marked_bytes(img) if chain is not None and base_volume else 0
        if written < max(1, relink_min()):
            return None
        self.engine.substrate.refresh()  # other processes changed volumes since this upload began
        doc = self.engine.load()
        how = relink.decide(doc, self.vdi, img, chain.leaf)
        if how is not None:
            how.update(leaf_volume=doc.vdis[self.vdi].volume, bytes=written)
        return how

    def _land_in_place(self, how: Dict[str, Any]) -> None:
        """Journal the decision and roll it forward; the caller holds the SR lock and the target exclusively."""
        self.handle.suspend()  # flushed and closed: its leaf is renamed or replaced below
        try:
            self.engine.journal.update(self.entry, **how)
            fault_point("upload.decided")
            relink.finish(self.engine, self.entry)
        except BaseException:
            _unmark(self.volume)  # recovery rolls it forward once this process lets go of the VDI
            raise
        finally:
            self.handle.resume()

    def discard(self) -> None:
        with self._lock:
            if self._image is None:
                return
            img, self._image = self._image, None
            self._drop(img)

    def _drop(self, img: Optional[VhdImage] = None) -> None:
        """Remove the scratch and end its entry; `img`, its open image, is closed first, and an error closing it
        (ENOSPC writing its footer on a full SR) does not hide the reason for the drop: the scratch goes anyway."""
        if img is not None:
            try:
                img.close()
            except Exception as e:
                log.debug("closing the dropped upload scratch %s: %s", self.volume, e)
        with self.engine.sr_lock().hold():
            self.engine.substrate.remove_volume(self.volume)
            self.engine.journal.end(self.entry)
        _unmark(self.volume)


def begin(engine: Engine, vdi: str, size: int, target: Any, handle: Any = None) -> Scratch:
    """A new scratch for an upload into `vdi` (whose writable handle the caller holds; pass it as `handle` to let
    the scratch land in place)."""
    volume = engine.volume_of(f"upload-{uuidlib.uuid4()}", "vhd")
    chain = getattr(handle, "chain", None)
    leaf: Optional[VhdImage] = chain.leaf if chain is not None else None
    if leaf is not None and (leaf.is_fixed or leaf.virtual_size != size or not hasattr(handle, "suspend")):
        leaf = None
    base = new_uuid()
    base_volume = engine.volume_of(base, "vhd") if leaf is not None else None
    _mark(volume)
    try:
        with data_write_errors(f"starting an upload into VDI {vdi}"):
            with engine.sr_lock().hold():
                entry = engine.journal.begin(OP, vdi=vdi, volume=volume, step="receive", base=base,
                                             base_volume=base_volume)
            try:
                image = _create(engine, volume, size, leaf, base_volume)
            except BaseException:
                with engine.sr_lock().hold():  # not started: nothing of it stays behind
                    engine.substrate.remove_volume(volume)
                    engine.journal.end(entry)
                raise
    except BaseException:
        _unmark(volume)
        raise
    return Scratch(engine, vdi, target, entry, image, handle if leaf is not None else None)


def _create(engine: Engine, volume: str, size: int, leaf: Optional[VhdImage], base_volume: Optional[str]) -> VhdImage:
    backing = engine.substrate.create_volume(volume, 0)
    try:
        # Differencing, so that only the sectors written are marked (a dynamic image marks whole blocks).
        if leaf is not None:
            # A child of the leaf, naming the volume the leaf becomes if the upload is relinked.
            create_child_on(backing, leaf, base_volume)
        else:
            # A raw VDI's scratch gets a fresh parent uuid (a null one means "raw parent" to VHD readers).
            create_sparse_on(backing, size, parent=(uuidlib.uuid4().bytes, 0, PARENT_NAME), round_to_block=False)
        return VhdImage.open(backing, name=volume, writable=True)
    except BaseException:
        backing.close()
        raise


def reserve(img: VhdImage, target: Any) -> int:
    """Write the target's own bytes back over every range `img` marks: the VDI reads the same afterwards, but
    every file-system block and image block that `apply` will write is allocated now. So a lack of space shows
    here, before the upload is accepted and before any of its bytes reached the VDI; `apply` then only
    overwrites. (On the copy path only -- small uploads, raw and reset-on-boot VDIs -- and a raw file is just
    fallocated; elsewhere it costs a second write of the upload's bytes.) Returns the bytes reserved."""
    done = 0
    allocate = getattr(target, "allocate", None)  # a raw file: fallocate, no second write
    for offset, length in marked_runs(img):
        if allocate is None or not allocate(offset, length):
            target.write(offset, target.read(offset, length))
        done += length
    target.flush()
    return done


def marked_runs(img: VhdImage) -> Iterator[Tuple[int, int]]:
    """(virtual offset, length) of every run of sectors marked in `img`, within the virtual size."""
    bs, spb = img.block_size, img.sectors_per_block
    for blk, entry in enumerate(img.bat):
        if entry == C.BAT_UNUSED or blk * bs >= img.virtual_size:
            continue
        vlen = min(bs, img.virtual_size - blk * bs)
        bits = bitmaps.bit_string(img.bitmap(blk), spb)
        for a, z, is_set in bitmaps.runs(bits, 0, -(-vlen // SECTOR)):
            if is_set:
                lo, hi = a * SECTOR, min(z * SECTOR, vlen)
                yield blk * bs + lo, hi - lo


def apply(img: VhdImage, target: Any) -> int:
    """Write every sector marked in `img` into `target` at the same offset; the number of bytes written."""
    done = 0
    for offset, length in marked_runs(img):
        blk, inb = divmod(offset, img.block_size)
        data_off = img.block_data_offset(blk)
        assert data_off is not None
        buf = bytearray(length)
        img.read_raw(memoryview(buf), data_off + inb)
        target.write(offset, bytes(buf))
        done += length
    return done


# ------------------------------------------------------------------------------------------------ recovery
@REPLAYERS.register(OP)
def replay(engine: Engine, entry: JournalEntry, include_coalesce: bool) -> bool:
    """Finish or drop a dead upload (the caller holds the SR lock). False when it may be alive: left as it is."""

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
            if entry.data.get("step") in ("relink", "replace"):
                relink.finish(engine, entry)
                log.info("upload into VDI %s: finished landing an accepted upload (%s)", vdi, entry.data["step"])
                return True
            if entry.data.get("step") == "commit" and engine.substrate.volume_exists(volume):
                try:
                    handle = engine.open_vdi(vdi, writable=True)
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
