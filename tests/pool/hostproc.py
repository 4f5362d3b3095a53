"""A simulated host as a long-lived Python process with its own environment.

libsanlock talks to the daemon its process's environment named at first use, so two simulated hosts cannot
share one Python process: each `HostProcess` runs `python -m tests.pool._host_server`, which executes the
statements sent to it (one JSON request per line) and answers with the value of `result` or the exception.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

REPO = Path(__file__).resolve().parents[2]


class RemoteError(Exception):
    """An exception raised inside the host process: `kind` is its class name, `wire` its SMAPI error if any."""

    def __init__(self, kind: str, message: str, wire: Optional[str]) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.wire = wire


class HostProcess:
    def __init__(self, name: str, env: Dict[str, str]) -> None:
        self.name = name
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.pool._host_server"], cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, code: str, **names: Any) -> Any:
        """Execute `code` in the host with `names` bound; returns the value it assigned to `result`."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"code": code, "names": names}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RemoteError("HostDied", f"host {self.name} exited with {self.proc.wait()}", None)
        answer = json.loads(line)
        if "error" in answer:
            raise RemoteError(answer["error"], answer["message"], answer.get("wire"))
        return answer["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
