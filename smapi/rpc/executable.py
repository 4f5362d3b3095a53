"""Per-verb executables: the SMAPIv3 plugin calling convention.

A plugin directory holds one executable per verb, named `Interface.verb` (`SR.create`, `Volume.snapshot`,
`Plugin.Query`), all links to one launcher. The launcher looks at its own name to pick the verb:

* `--json` (or `-j`) anywhere in argv: read ONE line of JSON from stdin, a dict of named arguments; print
  the bare JSON result and exit 0, or print `{"code", "params", "backtrace"}` and exit 1;
* otherwise positional arguments in definition order (records as JSON, maps as repeated `--name K V`), for
  people at a shell; errors go to stderr as one line.

xapi forks one process per call, so this module imports as little as possible: no click, no HTTP, no XML.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any, Dict, List, Optional, Sequence

from smapi.interface.errors import Bad_request, Internal_error, SmapiError, Unknown_method
from smapi.interface.model import Method
from smapi.interface.types import BOOL, INT64, Alias, StringMap, Type

#: a named-args line longer than this is refused rather than read into memory
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def _backtrace(exc: BaseException) -> Dict[str, Any]:
    """The xapi-storage `backtrace` object: the error text plus the frames it came through."""
    import traceback  # only on the failure path

    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    return {
        "error": str(exc),
        "files": [f.filename for f in frames],
        "lines": [f.lineno for f in frames],
    }


def failure_object(err: SmapiError) -> Dict[str, Any]:
    code, params = err.exec_code_params()
    return {"code": code, "params": params, "backtrace": _backtrace(err)}


def _read_json_args(stdin: IO[str]) -> Dict[str, Any]:
    line = stdin.readline(MAX_REQUEST_BYTES + 1)
    if len(line) > MAX_REQUEST_BYTES:
        raise Bad_request(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    if not line.strip():
        raise Bad_request("expected one line of JSON named arguments on stdin, got nothing")
    try:
        args = json.loads(line)
    except ValueError as e:
        raise Bad_request(f"stdin is not JSON: {e}") from None
    if not isinstance(args, dict):
        raise Bad_request("stdin must hold a JSON object of named arguments")
    args.pop("json", None)  # the generated bindings add json=True; it is not an interface argument
    return args


def _base_type(t: Type) -> Type:
    while isinstance(t, Alias):
        t = t.base
    return t


def _parse_positional(method: Method, wire_name: str, argv: Sequence[str]) -> Dict[str, Any]:
    """Command-line form: `SR.ls <dbg> <sr>`; maps as `--device_config K V` (repeatable)."""
    import argparse  # only paid for by people typing commands, not by xapi's --json calls

    parser = argparse.ArgumentParser(prog=wire_name, description=method.description)
    for p in method.params:
        base = _base_type(p.type)
        if isinstance(base, StringMap):
            parser.add_argument(f"--{p.name}", nargs=2, action="append", metavar=("KEY", "VALUE"),
                                default=[], help=p.description)
        else:
            kind = "int" if base is INT64 else "true|false" if base is BOOL else "JSON" if base.name not in (
                "string",) else "string"
            parser.add_argument(p.name, nargs="?" if p.optional else None, help=f"{p.description} ({kind})")
    ns = vars(parser.parse_args(list(argv)))
    args: Dict[str, Any] = {}
    for p in method.params:
        value = ns.get(p.name)
        base = _base_type(p.type)
        if isinstance(base, StringMap):
            args[p.name] = dict(value or [])
        elif value is None:
            continue
        elif base is BOOL:
            args[p.name] = value.lower() == "true" if value.lower() in ("true", "false") else value
        elif base.name == "string" or base is INT64:
            args[p.name] = value  # INT64's check converts decimal strings
        else:
            try:
                args[p.name] = json.loads(value)
            except ValueError:
                raise Bad_request(f"argument {p.name} must be JSON") from None
    return args


def run(driver_ref: str, api_name: str, argv: Sequence[str], stdin: IO[str], stdout: IO[str],
        stderr: IO[str]) -> int:
    """Run one verb; returns the exit code."""
    from smapi.interface.apis import get_api  # noqa: PLC0415 - keeps the import list of this module short

    verb = os.path.basename(argv[0]) if argv else ""
    options = list(argv[1:])
    json_mode = "--json" in options or "-j" in options
    api = get_api(api_name)
    try:
        found = api.lookup(verb)
        if found is None:
            raise Unknown_method(f"{verb} (this executable serves: {', '.join(api.wire_names())})")
        iface, method = found
        wire_name = f"{iface.name}.{method.name}"
        if json_mode:
            args = _read_json_args(stdin)
        else:
            args = _parse_positional(method, wire_name, options)
        from smapi.core.driver import load_driver

        driver = load_driver(driver_ref)
        result = driver.dispatcher(api_name).call(wire_name, args)
    except SmapiError as e:
        return _fail(e, json_mode, stdout, stderr)
    except SystemExit:
        raise
    except Exception as e:  # a driver that fails to load, for instance
        err = Internal_error(f"{type(e).__name__}: {e}")
        err.__traceback__ = e.__traceback__
        return _fail(err, json_mode, stdout, stderr)
    stdout.write(json.dumps(result) + "\n")
    return 0


def _fail(err: SmapiError, json_mode: bool, stdout: IO[str], stderr: IO[str]) -> int:
    if json_mode:
        stdout.write(json.dumps(failure_object(err)) + "\n")
    else:
        stderr.write(f"{err}\n")
    return 1


def main(driver_ref: str, api_name: str = "v3", argv: Optional[List[str]] = None) -> int:
    return run(driver_ref, api_name, sys.argv if argv is None else argv, sys.stdin, sys.stdout, sys.stderr)
