"""Building smapi's wheel in a test: from a private copy of the source tree.

`pip wheel REPO` builds in REPO/build; two test workers doing it at once (pytest-xdist) tear each other's build
directory apart. A copy of the tracked files per build keeps every build whole. A build that fails is a test
failure: setuptools is always installed beside the tests, so there is no "cannot build here" to skip for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
_IGNORED = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".hypothesis",
                                  "demo-sr", "man")


def source_copy(work: Path) -> Path:
    """The project's files (no virtualenvs, builds or compiled objects) under `work/src`."""
    dest = work / "src"
    shutil.copytree(REPO, dest, ignore=_IGNORED, symlinks=True)
    return dest


def build_wheels(work: Path, *projects: Path, pattern: str = "*.whl") -> List[Path]:
    """Wheels of smapi (from a private copy) and of `projects`, into `work/wheels`."""
    out = work / "wheels"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(out), str(source_copy(work)), *map(str, projects)],
                           capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        pytest.fail(f"pip wheel failed: {built.stderr[-2000:]}")
    return sorted(out.glob(pattern))
