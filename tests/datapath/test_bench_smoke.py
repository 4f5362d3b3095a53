"""The datapath benchmark runs end to end at a tiny size (no timing assertions) and cleans up after itself."""

import os
import subprocess
import sys

from .conftest import PREFIX

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "datapath.py")


def test_bench_runs(scratch):
    res = subprocess.run([sys.executable, BENCH, "--size", "4M", "--rounds", "1", "--depths", "1,3", "--dir", scratch],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "## Summary" in res.stdout and res.stdout.count("checksum ok") == 10
    assert "read throughput, depth 3" in res.stdout and "write throughput, depth 3" in res.stdout
    assert scratch.startswith(PREFIX) and os.listdir(scratch) == []  # scratch removed, servers stopped


def test_fio_bench_runs(scratch):
    import shutil

    import pytest

    if not (shutil.which("fio") and shutil.which("qemu-nbd")):
        pytest.skip("fio / qemu-nbd missing (ci/apt-packages.txt)")
    res = subprocess.run([sys.executable, BENCH, "--fio", "--size", "8M", "--depths", "2", "--runtime", "0.3",
                          "--cache", "warm", "--rounds", "1", "--dir", scratch],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "smapi engine: native" in res.stdout or "smapi engine: python" in res.stdout
    assert res.stdout.count("| warm | 2 |") == 6  # five scenarios over a full chain + allocating writes
    assert os.listdir(scratch) == []
