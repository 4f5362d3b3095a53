"""A verb that fails leaves the SR as it found it: its journal entry is rolled back at once, in-process.

A multi-step verb's point of no return is its SR-document commit (`smapi.sr.journal`). Each replayer rolls an
uncommitted entry back and rolls only a committed one forward, so replaying an entry right after a failure
undoes the verb: the caller that sees the failure sees the SR as it was before the call, and no later replay
can finish what the caller was told had failed. If the undo itself fails, the entry stays; the next replay
(before the next verb, or at attach) rolls it back the same way.

Also here: the undo of a resize that grew an image but was not committed (`shrink_back`).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from smapi.sr.engine import Engine
from smapi.sr.journal import JournalEntry
from smapi.sr.records import VdiRecord
from smapi.vhd import VhdImage
from smapi.vhd import constants as C
from smapi.vhd.resize import resized_footer_fields
from smapi.vhd.structs import batmap_checksum

log = logging.getLogger(__name__)


@contextmanager
def undone_on_failure(engine: Engine, entry: JournalEntry) -> Iterator[None]:
    """Run the steps of a verb up to and including its commit; if they fail, replay `entry` now (it was not
    committed, so that undoes the verb) and let the failure go on to the caller."""
    try:
        yield
    except BaseException as failure:
        try:
            engine.verbs.replayers[entry.op](engine, entry, False)
        except Exception as e:  # the entry stays: the next replay rolls it back
            log.warning("SR %s: undoing the failed %s (%s) failed too, left for the next replay: %s",
                        engine.sr, entry.op, failure, e)
        raise


def shrink_back(engine: Engine, rec: VdiRecord, old_size: int) -> None:
    """Give the image of `rec` its size `old_size` again after an uncommitted grow (idempotent).

    Nothing was written past the old end (the resize held the VDI's lock), so only the size goes back: a raw
    volume is truncated; a sparse VHD keeps the larger BAT room its grow may have made and gets its old size in
    the footer; a fixed VHD gets its footer back at the old end."""
    sub = engine.substrate
    if rec.format == "raw":
        if actual_raw_size(engine, rec) != old_size:
            sub.resize_volume(rec.volume, old_size)
        return
    img = VhdImage.open(sub.open_volume(rec.volume, writable=True), name=rec.volume, writable=True)
    try:
        if img.virtual_size == old_size:
            return
        if img.is_fixed:
            footer = img.footer.with_(**resized_footer_fields(img.footer, old_size))
            img.backing.pwrite(footer.pack(), old_size)
            img.backing.flush()
            img.backing.resize(old_size + C.FOOTER_SIZE)
            img.backing.flush()
            return
        _ = img.bat  # loads the batmap too, whose checksum range follows the virtual size
        img.update_footer(**resized_footer_fields(img.footer, old_size))
        if img.batmap is not None and img.batmap_header is not None and \
                batmap_checksum(img.batmap, old_size, img.block_size) != img.batmap_header.checksum:
            img.write_batmap()
            img.backing.flush()
    finally:
        img.close()
    log.info("SR %s: VDI %s back to %d bytes (its resize was not committed)", engine.sr, rec.uuid, old_size)


def actual_raw_size(engine: Engine, rec: VdiRecord) -> int:
    backing = engine.substrate.open_volume(rec.volume)
    try:
        return backing.size()
    finally:
        backing.close()
