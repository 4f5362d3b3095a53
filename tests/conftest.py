"""Shared fixtures: the example driver with its host-local state in a per-test directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The call log (smapi.common.calllog) goes to /var/log/smapi by default; tests keep it in a temporary file that
# subprocesses inherit. A test that reads the log sets its own SMAPI_LOG_FILE.
if "SMAPI_LOG_FILE" not in os.environ:
    import tempfile

    os.environ["SMAPI_LOG_FILE"] = os.path.join(tempfile.mkdtemp(prefix="smapi-test-log-"), "smapi.log")

# The host configuration of SRs (smapi.cli.hostconfig) is /var/lib/smapi by default: tests never write there.
if "SMAPI_STATE_DIR" not in os.environ:
    import tempfile

    os.environ["SMAPI_STATE_DIR"] = tempfile.mkdtemp(prefix="smapi-test-state-")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DRIVER = "smapi.examples.dirsr:DirSR"


@pytest.fixture
def example_state(tmp_path, monkeypatch):
    """Isolates the example driver's attached-SR table (it lives in $SMAPI_EXAMPLE_STATE)."""
    state = tmp_path / "state"
    monkeypatch.setenv("SMAPI_EXAMPLE_STATE", str(state))
    # The example module reads the variable at import time; reload it under the new value.
    import sys

    for name in [n for n in sys.modules if n.startswith("smapi_driver_dirsr")]:
        del sys.modules[name]
    yield state


@pytest.fixture
def sr_dir(tmp_path) -> str:
    path = tmp_path / "sr"
    return os.fspath(path)
