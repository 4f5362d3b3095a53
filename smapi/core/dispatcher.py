"""The one dispatcher behind every transport.

A transport turns bytes into `(method name, named arguments)`; the dispatcher finds the method in the API
definition, checks and normalises the arguments, calls the driver's implementation, checks the result, and
returns it or raises a typed `SmapiError`. Anything else a driver raises becomes `Internal_error`, so callers
always see a typed error and the server keeps serving.

Every call writes one line to the call log (`smapi.common.calllog`): the verb, the caller's `dbg` trace id,
the duration, and `ok` or the error's code. While the call runs, its `dbg` is the log's current one, so the
lines of the external commands it runs name it too. A call made while serving another one (the SMAPIv3 adapter
calling storage verbs, VDI.copy calling the destination driver) is part of the outer call: it writes no line of
its own, so one call from a caller is one line.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Dict, List, Mapping, Optional, Tuple

from smapi.common import calllog
from smapi.interface.errors import (
    Backend_error,
    Bad_request,
    Internal_error,
    Invalid_argument,
    SmapiError,
    Unimplemented,
    Unknown_method,
)
from smapi.interface.model import Api, Interface, Method
from smapi.interface.types import TypeCheckError


def named_args(params: Any) -> Dict[str, Any]:
    """Accept the shapes callers use for named arguments.

    rpclib sends one struct as the only positional parameter (`[{...}]`); JSON-RPC 2.0 callers may send the
    object directly (`{...}`); a call with no arguments may send `[]`.
    """
    if isinstance(params, dict):
        return params
    if isinstance(params, (list, tuple)):
        if len(params) == 0:
            return {}
        if len(params) == 1 and isinstance(params[0], dict):
            return params[0]
    raise Bad_request("expected one struct of named arguments as the only parameter")


#: true while this thread (context) is serving a call: calls made meanwhile are part of it and are not logged
_serving: ContextVar[bool] = ContextVar("smapi_serving", default=False)


def outcome_of(error: SmapiError) -> str:
    """The error code the call log gives for a failed call: the error's wire name, or a backend error's code."""
    if isinstance(error, Backend_error) and error.code:
        return error.code if error.code.isidentifier() else calllog.quote(error.code)
    return error.wire_name


def _dbg_of(params: Any) -> Optional[str]:
    """The caller's trace id, if the arguments carry one (most verbs have a `dbg` argument)."""
    if isinstance(params, (list, tuple)) and len(params) == 1:
        params = params[0]
    dbg = params.get("dbg") if isinstance(params, dict) else None
    return None if dbg is None else str(dbg)


class Dispatcher:
    """Routes calls of one API to a driver's implementations."""

    def __init__(self, api: Api, implementations: Mapping[str, Any]):
        self.api = api
        # Kept as given: a driver's mapping constructs each implementation only when a call reaches it.
        self.implementations = implementations

    def resolve(self, method_name: str) -> Tuple[Interface, Method]:
        found = self.api.lookup(method_name) if isinstance(method_name, str) else None
        if found is None:
            raise Unknown_method(str(method_name)[:200])
        return found

    @staticmethod
    def check_args(method: Method, args: Mapping[str, Any], wire_name: str) -> List[Any]:
        """Positional arguments in definition order, each checked against its type."""
        out: List[Any] = []
        for p in method.params:
            if p.name in args and args[p.name] is not None:
                try:
                    out.append(p.type.check(args[p.name], p.name))
                except TypeCheckError as e:
                    raise Invalid_argument(e.where, f"expected {e.expected} in {wire_name}") from None
            elif p.optional:
                out.append(p.default)
            else:
                raise Invalid_argument(p.name, f"missing ({p.type.doc()}) in {wire_name}")
        return out

    def call(self, method_name: str, params: Any) -> Any:
        """Run one call: `params` are named arguments (see `named_args`); returns the checked result."""
        if _serving.get():
            return self._run(method_name, params)
        token = _serving.set(True)
        dbg = _dbg_of(params)
        previous_dbg = calllog.set_current_dbg(dbg)
        start = time.monotonic()
        outcome = "ok"
        try:
            return self._run(method_name, params)
        except SmapiError as e:
            outcome = outcome_of(e)
            raise
        except BaseException as e:  # KeyboardInterrupt, SystemExit: still one line, naming what ended the call
            outcome = type(e).__name__
            raise
        finally:
            calllog.set_current_dbg(previous_dbg)
            _serving.reset(token)
            calllog.log_call(self._verb(method_name), dbg, time.monotonic() - start, outcome)

    def _verb(self, method_name: Any) -> str:
        """The verb as the log names it: its wire name, or what the caller sent (quoted) if it is none."""
        found = self.api.lookup(method_name) if isinstance(method_name, str) else None
        if found is None:
            return calllog.quote(str(method_name)[:200])
        return f"{found[0].name}.{found[1].name}"

    def _run(self, method_name: str, params: Any) -> Any:
        iface, method = self.resolve(method_name)
        wire_name = f"{iface.name}.{method.name}"
        args = self.check_args(method, named_args(params), wire_name)
        impl = self.implementations.get(iface.name)
        if impl is None:
            raise Unimplemented(wire_name)
        fn = getattr(impl, method.name, None)
        if fn is None:
            raise Unimplemented(wire_name)
        try:
            result = fn(*args)
        except SmapiError:
            raise
        except Exception as e:
            import logging  # only on the failure path: per-verb executables start faster without it

            logging.getLogger("smapi.dispatch").exception("%s failed", wire_name)
            raise Internal_error(f"{wire_name}: {type(e).__name__}: {e}") from e
        return self.check_result(method, wire_name, result)

    @staticmethod
    def check_result(method: Method, wire_name: str, result: Any) -> Any:
        if method.result is None:
            # The seed's examples return `{}` for verbs without a result.
            if result is None or result == {}:
                return None
            raise Internal_error(f"{wire_name} returned a value but the interface declares none")
        # The seed's Python examples return `{"<result name>": value}`; accept that shape too.
        if isinstance(result, dict) and len(result) == 1 and method.result.name in result:
            inner = result[method.result.name]
            try:
                return method.result.type.check(inner, method.result.name)
            except TypeCheckError:
                pass
        try:
            return method.result.type.check(result, method.result.name)
        except TypeCheckError as e:
            raise Internal_error(f"{wire_name} returned an invalid result: {e}") from None
