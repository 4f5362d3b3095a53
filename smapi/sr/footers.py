"""Torn footers repaired at attach: a VHD whose primary footer a killed write or resize left missing.

A dynamic VHD keeps its footer at the end of the file and a copy at offset 0; growing the image moves the end,
so a process killed (or hitting ENOSPC) at the wrong moment leaves an image that smapi still reads through the
copy but that other tools (qemu-img) read differently. At attach, each such image of this SR is repaired from its
copy, and the repair logged.

Only when nobody can be writing: on an SR used by this host alone (plain flock locks; on a shared SR a peer's
write in progress looks torn), with the collector's lock and the VDI's lock free, and no datapath recorded for
the VDI on this host.
"""

from __future__ import annotations

import logging
from typing import List

from smapi.sr.engine import Engine
from smapi.sr.locks import FileLock
from smapi.vhd import VhdError, VhdImage
from smapi.vhd.repair import repair_image

log = logging.getLogger("smapi.sr.footers")


def repair_torn(engine: Engine) -> List[str]:
    """Repair the torn VHDs of the SR; returns the volumes repaired."""
    gc = engine.gc_lock()
    if type(gc) is not FileLock or not gc.acquire(timeout=0):
        return []
    repaired: List[str] = []
    try:
        for rec in engine.load().vdis.values():
            if rec.format != "vhd" or engine.run.dp_states(engine.sr, rec.uuid):
                continue
            lock = engine.vdi_lock(rec.uuid)
            if lock.held() or not lock.acquire(timeout=0):
                continue
            try:
                if _repair_one(engine, rec.volume):
                    repaired.append(rec.volume)
            finally:
                lock.release()
    finally:
        gc.release()
    return repaired


def _repair_one(engine: Engine, volume: str) -> bool:
    try:
        backing = engine.substrate.open_volume(volume, writable=True)
    except (OSError, VhdError):
        return False
    try:
        img = VhdImage.open(backing, writable=True, owns_backing=False)
        if img.primary_ok:
            return False
        done = repair_image(img)
        img.close()
        backing.flush()
        log.warning("SR %s: repaired torn VHD %s: %s", engine.sr, volume, "; ".join(done))
        return True
    except VhdError as e:
        log.warning("SR %s: VHD %s needs repair but could not be repaired: %s", engine.sr, volume, e)
        return False
    finally:
        backing.close()
