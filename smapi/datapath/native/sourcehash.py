"""The hash of the native plugin's sources, compiled into the plugin (its nbdkit ``version``) by ``setup.py``.

:func:`smapi.datapath.native.availability` compares it with the sources beside it: the extension is optional, so a
rebuild that failed (an edited .c that no longer compiles, headers gone) leaves the previous ``.so`` in the tree,
and it must not keep serving as if it were the current code. Standard library only: ``setup.py`` loads this file
by path, before smapi is installed.
"""

from __future__ import annotations

import hashlib
import os
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))
#: compiled into the plugin, in this order (fuzz_vhd.c is a test harness, not part of it)
SOURCES = ["plugin.c", "vhdchain.c", "vhdcommit.c", "vhdopen.c", "vhdfmt.c", "vhdio.c", "vfile.c", "vhdtrim.c"]
HEADERS = ["vhdchain.h", "vhdfmt.h", "vhdio.h", "vhdtrim.h"]


def source_files(directory: str = HERE) -> List[str]:
    return [os.path.join(directory, name) for name in SOURCES + HEADERS]


def sources_hash(directory: str = HERE) -> str:
    """sha256 (first 16 hex digits) over each source's name and bytes."""
    digest = hashlib.sha256()
    for path in source_files(directory):
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
