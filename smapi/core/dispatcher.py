"""The one dispatcher behind every transport.

A transport turns bytes into `(method name, named arguments)`; the dispatcher finds the method in the API
definition, checks and normalises the arguments, calls the driver's implementation, checks the result, and
returns it or raises a typed `SmapiError`. Anything else a driver raises becomes `Internal_error`, so callers
always see a typed error and the server keeps serving.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from smapi.interface.errors import (
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
