"""The `smapi` console script as an administrator runs it: a real process, a host state directory and a run
directory of its own per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

SMAPI = Path(sys.executable).parent / "smapi"


class Shell:
    """Runs `smapi ...` with this test's SMAPI_STATE_DIR and SMAPI_RUN_DIR; stdin/stdout are pipes (no TTY)."""

    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "state"
        self.run_dir = tmp / "run"
        self.env: Dict[str, str] = {**os.environ, "SMAPI_STATE_DIR": str(self.state),
                                    "SMAPI_RUN_DIR": str(self.run_dir)}

    def __call__(self, *args: str, ok: bool = True, stdin: Optional[bytes] = None, env: Optional[Dict] = None,
                 **kw: Any) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(SMAPI), *args], input=stdin if stdin is not None else b"", capture_output=True,
                              env={**self.env, **(env or {})}, timeout=120, **kw)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout.decode(errors="replace"), proc.stderr.decode())
        return proc

    def out(self, *args: str) -> str:
        return self(*args).stdout.decode()


@pytest.fixture
def shell(tmp_path):
    if not SMAPI.exists():
        pytest.skip(f"no smapi console script beside {sys.executable} (install the package)")
    sh = Shell(tmp_path)
    yield sh
    # detach whatever the test left attached (datapath servers are processes)
    sh("sr-detach", "--all", ok=False)
