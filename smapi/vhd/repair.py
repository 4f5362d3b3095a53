"""Repair what can be repaired without guessing data: footers, a torn or truncated tail, the batmap, a null UUID."""

import uuid as uuidlib
from array import array
from typing import List

from . import bitmaps
from . import constants as C
from .errors import VhdError
from .image import VhdImage
from .structs import parse_footer


def repair_image(img: VhdImage) -> List[str]:
    """Fix ``img`` in place; return what was done (empty if nothing was needed).

    - primary footer missing/invalid: rewritten from the backup copy at offset 0, at the end of data;
    - stale tail after the last block (torn allocation) or a misplaced footer: truncated;
    - blocks cut off by a truncated file: unmapped (their data is gone; the parent shows through);
    - backup footer invalid or different: rewritten from the primary;
    - null UUID: a new one is generated;
    - batmap with a bad checksum: rebuilt from the block bitmaps.
    """
    img.require_writable()
    done: List[str] = []
    if img.footer.uuid == bytes(16):
        img.footer = img.footer.with_(uuid=uuidlib.uuid4().bytes)
        done.append("generated a UUID for the null footer UUID")
    if img.header is None:
        if done:
            img.backing.pwrite(img.footer.pack(), img.virtual_size)
            img.backing.flush()
        return done
    bat = img.bat
    footprint = img.bitmap_size + img.block_size
    size = img.backing.size()
    lost = [blk for blk, e in enumerate(bat) if e != C.BAT_UNUSED and e * C.SECTOR + footprint > size]
    if lost:
        if img.batmap is not None and img.batmap_valid:
            # Their batmap bits go first: a clear bit is always safe, a set one over an unmapped block is not.
            batmap = bytearray(img.batmap)
            for blk in lost:
                batmap[blk >> 3] &= ~(0x80 >> (blk & 7)) & 0xFF
            img.write_batmap(batmap)
            img.backing.flush()
        bat = array(bat.typecode, bat)
        for blk in lost:
            bat[blk] = C.BAT_UNUSED
        img.replace_bat(bat)
        done.append(f"unmapped {len(lost)} block(s) cut off by the end of the file: {lost[:8]}")
    if img.batmap_header is not None and not img.batmap_valid:
        batmap = bytearray(img.batmap_header.batmap_size * C.SECTOR)
        for blk, e in enumerate(bat):
            if e != C.BAT_UNUSED and bitmaps.all_set(img.bitmap(blk), img.sectors_per_block):
                batmap[blk >> 3] |= 0x80 >> (blk & 7)
        img.write_batmap(batmap)
        img.backing.flush()
        done.append("rebuilt the batmap from the block bitmaps")
    end = img.end_of_data()
    if not img.primary_ok or size != end + C.FOOTER_SIZE or done:
        why = "primary footer restored from the backup" if not img.primary_ok else "footer rewritten at end of data"
        img.write_footer()
        img.backing.flush()
        done.append(f"{why} at {end}, file size now {end + C.FOOTER_SIZE}")
    try:
        backup = parse_footer(img.backing.pread(C.FOOTER_SIZE, 0), image=img.name, where="backup footer")
        ok = backup.pack() == img.footer.pack()
    except VhdError:
        ok = False
    if not ok:
        img.backing.pwrite(img.footer.pack(), 0)
        img.backing.flush()
        done.append("backup footer rewritten from the primary")
    return done
