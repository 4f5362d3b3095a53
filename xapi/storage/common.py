"""`xapi.storage.common.call`: run a command for a plugin, failing with the bindings' InternalError."""

from __future__ import annotations

import subprocess
from typing import Any, Sequence

import xapi
from xapi.storage import log


def call(dbg: str, cmd_args: Sequence[str], error: bool = True, simple: bool = True, expRc: int = 0) -> Any:  # noqa: N803
    log.debug("%s: Running cmd %s", dbg, list(cmd_args))
    proc = subprocess.run(list(cmd_args), capture_output=True, close_fds=True)
    if error and proc.returncode != expRc:
        log.error("%s: %s exited with code %d: %s", dbg, " ".join(cmd_args), proc.returncode, proc.stderr)
        raise xapi.InternalError(f"{' '.join(cmd_args)} exitted with non-zero code {proc.returncode}: {proc.stderr!r}")
    if simple:
        return proc.stdout
    return proc.stdout, proc.stderr, proc.returncode
