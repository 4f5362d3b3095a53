"""The `xapi` module SMAPIv3 plugins import, for plugins written against xen-api's Python bindings.

xen-api ships a hand-written `xapi` package next to bindings generated from its storage IDL
(`xapi.storage.api.v5.*`). A vendor's plugin imports names from both; smapi provides the same names with the
same behaviour, so such a plugin runs unchanged on a host that has smapi instead of xen-api's packages:

* `handle_exception(e)` prints the SMAPIv3 error object `{"code", "params", "backtrace"}` and exits 1. An IDL
  error (an `Rpc_light_failure`) travels as `SR_BACKEND_FAILURE` with `[ClassName, str(e)]`; an exception with
  `code`/`params` attributes (`XenAPIException`) keeps its own.
* `Rpc_light_failure` and its subclasses are the IDL errors; `failure()` is their rpc-light encoding.

This is smapi's own code, written from the documented behaviour, not a copy of xen-api's.
"""

from __future__ import annotations

import argparse
import builtins
import json
import sys
import traceback
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "success", "handle_exception", "XenAPIException", "MissingDependency", "Rpc_light_failure", "Unimplemented",
    "InternalError", "UnmarshalException", "TypeError", "UnknownMethod", "is_long", "ListAction",
]


def success(result: Any) -> Dict[str, Any]:
    return {"Status": "Success", "Value": result}


def error_object(exc: BaseException) -> Dict[str, Any]:
    """The object xapi-storage-script decodes from a failed script's stdout."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    code = getattr(exc, "code", "SR_BACKEND_FAILURE")
    params = getattr(exc, "params", [type(exc).__name__, str(exc)])
    return {
        "code": code,
        "params": params,
        "backtrace": {"error": str(exc), "files": [f.filename for f in frames], "lines": [f.lineno for f in frames]},
    }


def handle_exception(e: BaseException, code: Optional[str] = None, params: Optional[List[str]] = None) -> None:
    """Print the error object of `e` on stdout and exit 1 (what a failing SMAPIv3 script does)."""
    obj = error_object(e)
    if code is not None and not hasattr(e, "code"):
        obj["code"] = code
    if params is not None and not hasattr(e, "params"):
        obj["params"] = params
    print(json.dumps(obj), file=sys.stdout)
    sys.exit(1)


class XenAPIException(Exception):
    """A failure with a XenAPI error code, passed to xapi as is."""

    def __init__(self, code: str, params: List[str]) -> None:
        Exception.__init__(self)
        if not isinstance(code, str):
            raise TypeError("string", repr(code))
        if not isinstance(params, list):
            raise TypeError("list", repr(params))
        self.code = code
        self.params = params


class MissingDependency(Exception):
    def __init__(self, missing: str) -> None:
        super().__init__(missing)
        self.missing = missing

    def __str__(self) -> str:
        return f"There is a missing dependency: {self.missing} not found"


class Rpc_light_failure(Exception):
    """Base of the IDL's errors: a variant name and its arguments."""

    def __init__(self, name: str, args: Sequence[Any]) -> None:
        super().__init__(*args)
        self.name = name

    def failure(self) -> Dict[str, Any]:
        """The rpc-light failure response (one argument travels bare, several as a list)."""
        args = list(self.args)
        return {"Status": "Failure", "ErrorDescription": [self.name, args[0] if len(args) == 1 else args]}


class Unimplemented(Rpc_light_failure):
    def __init__(self, arg: str) -> None:
        super().__init__("Unimplemented", [arg])


class InternalError(Rpc_light_failure):
    def __init__(self, error: str) -> None:
        super().__init__("Internal_error", [error])


class UnmarshalException(InternalError):
    def __init__(self, thing: Any, ty: Any, desc: Any) -> None:
        super().__init__(f"UnmarshalException thing={thing} ty={ty} desc={desc}")


class TypeError(InternalError):  # noqa: A001 - the upstream bindings' name, shadowing the builtin on purpose
    def __init__(self, expected: Any, actual: Any) -> None:
        super().__init__(f"TypeError expected={expected} actual={actual}")


class UnknownMethod(InternalError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown method {name}")


def is_long(x: Any) -> bool:
    try:
        int(x)
    except (ValueError, builtins.TypeError):
        return False
    return True


class ListAction(argparse.Action):
    """`--name key value`, repeatable, collected into one dictionary."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        current = getattr(namespace, self.dest, None)
        if current is None:
            current = {}
            setattr(namespace, self.dest, current)
        current[values[0]] = values[1]
