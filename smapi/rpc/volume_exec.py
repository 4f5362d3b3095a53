"""The volume plugin xapi-storage-script finds under `<root>/volume/<name>/`: the driver's v3 executables, with
`Plugin.Query` naming the plugin as its directory does.

xapi makes the SM record's type from `Plugin.Query`'s `plugin` field, but finds running plugins by directory
name: the two must agree, or xapi registers a second SM (of the driver's own name, which may be a classic type
such as `file`) on every start. The directory name is chosen at install time (`--name`), so the launcher
passes it here.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import IO, List, Optional, Sequence


def run(driver_ref: str, plugin: str, argv: Sequence[str], stdin: IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    from smapi.rpc import executable

    verb = os.path.basename(argv[0]) if argv else ""
    if verb.lower() != "plugin.query":
        return executable.run(driver_ref, "v3", argv, stdin, stdout, stderr)
    answer = io.StringIO()
    rc = executable.run(driver_ref, "v3", argv, stdin, answer, stderr)
    text = answer.getvalue()
    if rc == 0:
        try:
            query = json.loads(text)
        except ValueError:
            query = None
        if isinstance(query, dict):
            query["plugin"] = plugin
            text = json.dumps(query) + "\n"
    stdout.write(text)
    return rc


def main(driver_ref: str, plugin: str, argv: Optional[List[str]] = None) -> int:
    return run(driver_ref, plugin, sys.argv if argv is None else argv, sys.stdin, sys.stdout, sys.stderr)
