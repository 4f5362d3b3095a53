"""Seconds-long libFuzzer smoke of the native VHD engine (parsing, chain reads, allocation, commit) under
AddressSanitizer and UBSan.  The corpus is seeded with small images the Python library writes.  Longer runs:
``SMAPI_FUZZ_SECONDS=600 pytest tests/datapath/test_native_fuzz.py`` (crashes land in the test's directory)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import smapi.vhd as vhd
from smapi.datapath import native

SOURCES = ["fuzz_vhd.c", "vhdfmt.c", "vhdopen.c", "vhdchain.c", "vhdcommit.c", "vhdio.c", "vfile.c"]


def _seed_corpus(corpus: str) -> None:
    os.makedirs(corpus)
    small = os.path.join(corpus, "dyn-small-blocks.vhd")
    vhd.create_dynamic(small, 64 * 1024, block_size=4096)
    with vhd.open_chain(small, writable=True) as chain:
        chain.write(4096, b"\x11" * 6000)
        chain.write(40000, b"\x22" * 512)
    vhd.create_dynamic(os.path.join(corpus, "dyn-empty.vhd"), 2 << 20)
    vhd.create_fixed(os.path.join(corpus, "fixed.vhd"), 8192)
    vhd.snapshot(small, os.path.join(corpus, "diff.vhd"))


def test_fuzz_smoke(tmp_path):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang missing (ci/apt-packages.txt): no libFuzzer build")
    exe = str(tmp_path / "fuzz_vhd")
    build = subprocess.run([clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
                            "-I", native.HERE, *[os.path.join(native.HERE, s) for s in SOURCES], "-lpthread",
                            "-o", exe], capture_output=True, text=True, timeout=300)
    if build.returncode != 0 and "fuzzer" in build.stderr and "cannot find" in build.stderr:
        pytest.skip(f"clang has no libFuzzer runtime: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr[-3000:]
    corpus = str(tmp_path / "corpus")
    _seed_corpus(corpus)
    seconds = int(os.environ.get("SMAPI_FUZZ_SECONDS", "5"))
    run = subprocess.run([exe, f"-max_total_time={seconds}", "-max_len=1048576", "-rss_limit_mb=1024",
                          f"-artifact_prefix={tmp_path}/", corpus], capture_output=True, text=True,
                         timeout=seconds + 300, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done" in run.stderr and "ERROR" not in run.stderr
