"""Several processes on one SR at once: snapshots, clones, creates, destroys, resizes and writes, with the
collector running synchronously in each of them. Afterwards every VDI reads as its owner's model says, volumes
and records match, and every VHD passes smapi.vhd.check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.sr.helpers import FileSR

REPO = Path(__file__).resolve().parents[2]
WORKERS = 4
STEPS = 80


def test_processes_hammering_one_sr_leave_it_consistent(fsr: FileSR) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SMAPI_GC": "sync"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.sr._hammer", fsr.path, str(seed), str(STEPS)],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(WORKERS)]
    expected = {}
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        expected.update(json.loads(out.strip().splitlines()[-1]))
    fsr.reload()
    assert fsr.digests() == expected
    fsr.driver.gc(fsr.sr)
    assert fsr.digests() == expected
    fsr.assert_consistent()
    doc = fsr.document()
    # the collector left no garbage (hidden images without children)
    assert not [r for r in doc.vdis.values() if r.hidden and not doc.children(r.uuid)]
