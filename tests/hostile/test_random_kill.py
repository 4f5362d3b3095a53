"""Killed at random moments (not only at the named fault points): after the next attach and scan there are no
temporary files, no lock files of VDIs that do not exist, no journal entries, and every VHD passes check."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.sr.helpers import FileSR

REPO = Path(__file__).resolve().parents[2]
TRIALS = 5


def test_random_kills_leave_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SMAPI_GC", "sync")
    monkeypatch.delenv("SMAPI_FAULT", raising=False)
    sr = FileSR(str(tmp_path / "sr"))
    sr.create_sr()
    sr.attach()
    rng = random.Random(16)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for trial in range(TRIALS):
        proc = subprocess.Popen([sys.executable, "-m", "tests.hostile._churn", sr.path, str(trial)], env=env,
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(rng.uniform(0.4, 1.5))
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            if proc.stderr:
                proc.stderr.close()
    # A rebooted host: fresh run directory, attach (replays the journal), scan.
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "run-after"))
    sr.reload()
    sr.attach()
    scanned = sr.scan()
    sr.assert_consistent()
    leftovers = [str(p) for p in Path(sr.path).rglob("*") if ".tmp." in p.name]
    assert leftovers == []
    known = set(sr.document().vdis)
    stale = [n for n in os.listdir(Path(sr.path) / ".locks") if n.startswith("vdi-") and n[4:] not in known]
    assert stale == []
    for vdi in scanned:
        sr.read_all(vdi)  # every VDI still reads
