"""Temporary files of interrupted document writes (a verb killed, ENOSPC) go at the next SR.attach or SR.scan; a
write still in progress (its process alive) keeps its file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from smapi.common import files
from tests.sr.helpers import FileSR

#: a verb process killed in the middle of writing the SR document: the temporary file is written, never renamed
KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from smapi.common import files
    def die(src, dst):
        os._exit(9)
    os.replace = die
    files.write_json(sys.argv[1], {"torn": True})
""")


def _killed_write(path: str) -> None:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = subprocess.run([sys.executable, "-c", KILLED_WRITER, path], cwd=repo, timeout=60)
    assert res.returncode == 9


def _temps(directory: str) -> list:
    return sorted(n for n in os.listdir(directory) if files.TEMP_PATTERN.match(n))


def test_scan_and_attach_remove_what_killed_writers_left(fsr: FileSR) -> None:
    vdi = fsr.create()
    journal = os.path.join(fsr.path, ".journal")
    _killed_write(os.path.join(fsr.path, "sr.json"))
    _killed_write(os.path.join(journal, "op.json"))
    assert len(_temps(fsr.path)) == 1 and len(_temps(journal)) == 1
    ours = files.temp_path(os.path.join(fsr.path, "sr.json"))  # a write of this (live) process, in progress
    with open(ours, "w") as f:
        f.write("{}")
    assert vdi in fsr.scan()
    assert _temps(fsr.path) == [os.path.basename(ours)] and _temps(journal) == []
    os.unlink(ours)

    _killed_write(os.path.join(fsr.path, "sr.json"))
    fsr.call("SR.detach", sr=fsr.sr)
    fsr.attach()
    assert _temps(fsr.path) == []
    assert vdi in fsr.scan()
