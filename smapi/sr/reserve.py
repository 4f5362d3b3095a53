"""A little space held back in a directory SR, so that a full SR can still be emptied.

Destroying a VDI is the way to free space, yet it writes a journal entry and the SR document first; on a full
file system those writes fail with ENOSPC and the SR could only be repaired from outside smapi. A file SR
therefore keeps a `.reserve` file (created at SR.create and attach, when there is room). When a verb that frees
space fails for lack of it, the reserve is removed and the verb tried once more; the reserve is made again as
soon as there is room.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Optional, TypeVar

from smapi.interface.errors import Backend_error
from smapi.sr.errors import is_no_space
from smapi.sr.substrate import Substrate

log = logging.getLogger("smapi.sr.reserve")

#: bytes held back: a journal entry and a few rewrites of a large SR document
RESERVE_BYTES = 1 << 20
T = TypeVar("T")


def _reserve_path(substrate: Substrate) -> Optional[str]:
    from smapi.sr.directory import RESERVE, DirectorySubstrate

    if not isinstance(substrate, DirectorySubstrate):
        return None  # other substrates keep their documents outside the volumes' space (LVM: the MGT LV)
    return os.path.join(substrate.path, RESERVE)


def ensure(substrate: Substrate) -> None:
    """Make the reserve if it is missing and there is room (best effort: a full SR simply has none yet)."""
    path = _reserve_path(substrate)
    if path is None or os.path.exists(path):
        return
    tmp = path + ".new"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks: a sparse file would hold nothing back
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        log.debug("no space reserve in %s yet: %s", path, e)


def freeing_space(substrate: Substrate, verb: Callable[[], T]) -> T:
    """Run `verb`, which frees space; if it fails for lack of space, give up the reserve and run it once more."""
    try:
        result = verb()
    except Backend_error as e:
        path = _reserve_path(substrate)
        if not is_no_space(e) or path is None or not os.path.exists(path):
            raise
        log.warning("%s is full: using its space reserve to free space", substrate.describe())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        result = verb()
    ensure(substrate)
    return result
