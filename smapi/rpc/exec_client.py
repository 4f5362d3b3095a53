"""Client side of the per-verb executable convention (SMAPIv3 plugin directories).

For `SR.attach` it runs `<dir>/SR.attach --json`, writes one JSON line of named arguments to stdin and
closes it. Exit 0: stdout is the bare JSON result. Non-zero exit: stdout is `{"code", "params", "backtrace"}`,
decoded with `error_from_exec`. The outcomes that are not a proper answer are reported the way
xapi-storage-script reports them (`SCRIPT_FAILED`, `SCRIPT_NOT_EXECUTABLE` backend errors), except a missing
script, which here means the plugin does not implement the verb (`Unimplemented`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from smapi.common import commands
from smapi.interface.errors import Backend_error, Unimplemented, error_from_exec
from smapi.interface.model import Method
from smapi.rpc.httpclient import DEFAULT_TIMEOUT


class ExecTransport:
    """Runs one executable per call; stateless, so safe to share between threads."""

    def __init__(self, directory: str, timeout: float = DEFAULT_TIMEOUT):
        self.directory = directory
        self.timeout = timeout

    def script(self, wire_name: str) -> Optional[str]:
        """The executable for `wire_name`; looked up case-insensitively (`Plugin.Query`), as xapi does."""
        exact = os.path.join(self.directory, wire_name)
        if os.path.isfile(exact):
            return exact
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return None
        for name in sorted(names):
            if name.lower() == wire_name.lower():
                return os.path.join(self.directory, name)
        return None

    def call(self, wire_name: str, args: Dict[str, Any], method: Method) -> Any:
        script = self.script(wire_name)
        if script is None:
            raise Unimplemented(wire_name)
        try:
            proc = commands.run([script, "--json"], input=json.dumps(args) + "\n", timeout=self.timeout, check=False)
        except commands.CommandNotRunnable:
            raise Backend_error("SCRIPT_NOT_EXECUTABLE", [script, "Check whether the file has the execute bit"]) \
                from None
        except commands.CommandTimedOut:
            # The runner has killed the script (and whatever it started) already.
            raise TimeoutError(f"{script} did not finish within {self.timeout} s") from None
        return _outcome(script, proc)

    def close(self) -> None:
        pass


def _outcome(script: str, proc: commands.CommandResult) -> Any:
    out = proc.stdout
    if proc.returncode < 0:
        raise Backend_error("SCRIPT_FAILED", [script, "signalled", str(-proc.returncode), out, proc.stderr])
    try:
        parsed = json.loads(out)
        parsed_ok = True
    except ValueError:
        parsed, parsed_ok = None, False
    if proc.returncode == 0:
        if not parsed_ok:
            raise Backend_error("SCRIPT_FAILED", [script, "bad json on stdout", out])
        return parsed
    if parsed_ok and isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        params = parsed.get("params")
        raise error_from_exec(parsed["code"], params if isinstance(params, list) else [])
    raise Backend_error(
        "SCRIPT_FAILED",
        [script, "non-zero exit and bad json on stdout", str(proc.returncode), out, proc.stderr],
    )
