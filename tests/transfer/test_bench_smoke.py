"""The upload benchmark runs end to end at a tiny size (no timing assertions): every contender's PUT succeeds,
the smapi and copy VDIs read back the uploaded body, and its scratch directory is removed."""

import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "upload.py")


def test_upload_bench_runs(tmp_path):
    res = subprocess.run([sys.executable, BENCH, "--smoke", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "verified: the smapi and copy VDIs read back the body" in res.stdout
    for row in ("smapi PUT / plain-file PUT (fresh)", "smapi PUT / atomic-file PUT (over)"):
        assert row in res.stdout
    assert os.listdir(tmp_path) == []
