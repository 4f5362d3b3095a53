"""The datapath plugin xapi-storage-script finds under `<root>/datapath/<scheme>/`.

xapi picks a datapath plugin by the scheme of a volume's URI (`smapi://<sr>/<volume>` → `datapath/smapi/`), so
one datapath directory serves the volumes of every smapi driver installed on the host. Each call finds the
driver of the volume's SR in the host's record of attached SRs ($SMAPI_RUN_DIR/srs), and falls back to the
driver named when the directory was installed (a driver that keeps no such record).

`Plugin.Query` answers for the datapath itself, without loading a driver: xapi calls it with dbg "register"
when the directory appears and requires a `required_api_version` it supports.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

#: xapi-storage-script accepts these (main.ml `supported_api_versions`); the newest is preferred
REQUIRED_API_VERSION = "5.0"
#: Datapath.open(persistent=false) drops the writes at close, so xapi can leave non-persistence to us;
#: Datapath.import_activate serves inbound mirrors (VDI_MIRROR_IN). Data.mirror is not implemented, so
#: VDI_MIRROR is not advertised (tests/toolstack/test_v3_today.py checks each against the implementation).
DATAPATH_FEATURES = ["NONPERSISTENT", "VDI_MIRROR_IN"]


def datapath_query() -> Dict[str, Any]:
    from smapi.common.version import __version__

    return {
        "plugin": "smapi", "name": "smapi datapath",
        "description": "Serves smapi volumes to guests (qdisk over NBD) and to dom0 (NBD, file, block device)",
        "vendor": "smapi", "copyright": "smapi contributors", "version": __version__,
        "required_api_version": REQUIRED_API_VERSION, "features": list(DATAPATH_FEATURES), "configuration": {},
        "required_cluster_stack": [],
    }


def driver_for_uri(uri: Any, fallback: str) -> str:
    """The driver reference of the SR named in a volume URI, as recorded when the SR was attached here."""
    if not isinstance(uri, str):
        return fallback
    from smapi.core.v3_adapter import parse_volume_uri
    from smapi.interface.errors import SmapiError
    from smapi.sr.runstate import RunState

    try:
        sr, _ = parse_volume_uri(uri)
        record = RunState().attached(sr)
    except (SmapiError, ValueError, OSError):
        return fallback  # the driver will answer with the typed error
    driver = record.get("driver") if isinstance(record, dict) else None
    return driver if isinstance(driver, str) and driver else fallback


def _uri_argument(verb_args: List[str], line: str) -> Optional[Any]:
    if line:
        try:
            args = json.loads(line)
        except ValueError:
            return None  # the executable reports the bad request
        return args.get("uri") if isinstance(args, dict) else None
    positional = [a for a in verb_args if not a.startswith("-")]
    return positional[1] if len(positional) > 1 else None  # Datapath.<verb> <dbg> <uri> ...


def run(fallback_driver: str, argv: Sequence[str], stdin: IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    from smapi.rpc import executable

    verb = os.path.basename(argv[0]) if argv else ""
    options = list(argv[1:])
    json_mode = "--json" in options or "-j" in options
    if verb.lower().startswith("plugin."):
        answers: Dict[str, Callable[[], Any]] = {
            "plugin.query": datapath_query, "plugin.ls": list, "plugin.diagnostics": str,
        }
        answer = answers.get(verb.lower())
        if answer is not None:
            if json_mode:
                stdin.readline(executable.MAX_REQUEST_BYTES)
            stdout.write(json.dumps(answer()) + "\n")
            return 0
    line = stdin.readline(executable.MAX_REQUEST_BYTES + 1) if json_mode else ""
    driver = driver_for_uri(_uri_argument(options, line), fallback_driver)
    return executable.run(driver, "v3", argv, io.StringIO(line), stdout, stderr)


def main(fallback_driver: str, argv: Optional[List[str]] = None) -> int:
    return run(fallback_driver, sys.argv if argv is None else argv, sys.stdin, sys.stdout, sys.stderr)
