"""The benchmark script runs end to end at a tiny size (no timing assertions)."""

import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "vhd.py")


def test_bench_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, BENCH, "--size", "16M", "--rounds", "1", "--scan-files", "20", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "## Summary" in res.stdout and "gate ok" in res.stdout
    assert os.listdir(tmp_path) == []  # scratch cleaned up
