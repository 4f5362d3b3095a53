"""Builds the classes of a bindings module from a table of interfaces (see the package docstring).

The tables in plugin.py, volume.py, datapath.py and task.py list each verb's parameter names in IDL order, as
xen-api's storage IDL declares them. Where smapi's own interface definition (smapi.interface.v3) knows a verb,
its parameter types check the arguments, as the generated bindings do; the IDL verbs smapi does not define
yet (`Volume.revert`, `Data.*`, `Task.*`, ...) are passed through unchecked.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import xapi

#: interface name -> [(verb, [parameter names])]
Table = Sequence[Tuple[str, Sequence[Tuple[str, Sequence[str]]]]]


def _smapi_method(interface: str, verb: str) -> Optional[Any]:
    from smapi.interface.apis import get_api

    found = get_api("v3").lookup(f"{interface}.{verb}")
    return found[1] if found is not None else None


def _checked(interface: str, verb: str, args: Any, names: Sequence[str]) -> List[Any]:
    """The positional arguments of one call, type-checked; raises the bindings' UnmarshalException/TypeError."""
    from smapi.interface.types import TypeCheckError

    if not isinstance(args, dict):
        raise xapi.UnmarshalException("arguments", "dict", repr(args))
    method = _smapi_method(interface, verb)
    types = {p.name: p.type for p in method.params} if method is not None else {}
    values = []
    for name in names:
        if name not in args:
            raise xapi.UnmarshalException("argument missing", name, "")
        value = args[name]
        if name in types:
            try:
                value = types[name].check(value, name)
            except TypeCheckError as e:
                raise xapi.TypeError(e.expected, repr(value)) from None
        values.append(value)
    return values


def _dispatcher_method(interface: str, verb: str, names: Sequence[str]) -> Callable[[Any, Any], Any]:
    def call(self: Any, args: Any) -> Any:
        return getattr(self._impl, verb)(*_checked(interface, verb, args, names))

    call.__name__ = verb
    call.__doc__ = f"type-check the arguments of {interface}.{verb}, then call the implementation"
    return call


def _server_dispatcher(interface: str, verbs: Sequence[Tuple[str, Sequence[str]]]) -> type:
    def __init__(self: Any, impl: Any) -> None:
        self._impl = impl
        self._dispatcher_dict = {f"{interface}.{verb}": getattr(self, verb) for verb, _ in verbs}

    def _dispatch(self: Any, method: str, params: Sequence[Any]) -> Any:
        return xapi.success(self._dispatcher_dict[method](params[0]))

    body: Dict[str, Any] = {"__init__": __init__, "_dispatch": _dispatch}
    body.update({verb: _dispatcher_method(interface, verb, names) for verb, names in verbs})
    return type(f"{interface}_server_dispatcher", (object,), body)


def _skeleton(interface: str, verbs: Sequence[Tuple[str, Sequence[str]]], suffix: str) -> type:
    def unimplemented(verb: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any) -> Any:
            raise xapi.Unimplemented(f"{interface}.{verb}")

        method.__name__ = verb
        return method

    def placeholder(verb: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any) -> Any:
            return None  # the generated test implementation answers arbitrary values; None is one

        method.__name__ = verb
        return method

    make = unimplemented if suffix == "skeleton" else placeholder
    body: Dict[str, Any] = {"__init__": lambda self: None}
    body.update({verb: make(verb) for verb, _ in verbs})
    return type(f"{interface}_{suffix}", (object,), body)


def _parse_arguments(interface: str, verb: str, names: Sequence[str]) -> Dict[str, Any]:
    if "--json" in sys.argv or "-j" in sys.argv:
        request = json.loads(sys.stdin.readline())
        request["json"] = True
        return request
    import argparse

    from smapi.interface.types import Alias, StringMap

    method = _smapi_method(interface, verb)
    types = {p.name: p.type for p in method.params} if method is not None else {}
    parser = argparse.ArgumentParser(prog=f"{interface}.{verb}")
    parser.add_argument("-j", "--json", action="store_true", help="read the arguments as JSON from stdin")
    maps = []
    for name in names:
        base = types.get(name)
        while isinstance(base, Alias):
            base = base.base
        if isinstance(base, StringMap):
            maps.append(name)
            parser.add_argument(f"--{name}", default={}, nargs=2, action=xapi.ListAction)
        else:
            parser.add_argument(name)
    parsed = vars(parser.parse_args())
    for name in names:
        value = parsed.get(name)
        if name in maps or name not in types or not isinstance(value, str):
            continue
        if types[name].name != "string":
            with contextlib.suppress(ValueError):  # a value that is not JSON: the type check reports it
                parsed[name] = json.loads(value)
    return parsed


def _commandline_method(interface: str, verb: str, names: Sequence[str]) -> Callable[[Any], None]:
    def run(self: Any) -> None:
        use_json = False
        try:
            request = _parse_arguments(interface, verb, names)
            use_json = bool(request.get("json"))
            print(json.dumps(getattr(self.dispatcher, verb)(request)))
        except Exception as exn:
            if use_json:
                xapi.handle_exception(exn)
            else:
                traceback.print_exc()
                raise

    run.__name__ = verb
    return run


def _commandline(interface: str, verbs: Sequence[Tuple[str, Sequence[str]]], dispatcher: type) -> type:
    def __init__(self: Any, impl: Any) -> None:
        self.impl = impl
        self.dispatcher = dispatcher(impl)

    body: Dict[str, Any] = {"__init__": __init__, "__doc__": "Parse command-line arguments and call an implementation."}
    body.update({verb: _commandline_method(interface, verb, names) for verb, names in verbs})
    return type(f"{interface}_commandline", (object,), body)


def _error_class(name: str, module: str) -> type:
    def __init__(self: Any, arg_0: Any) -> None:
        xapi.Rpc_light_failure.__init__(self, name, [arg_0])
        self.arg_0 = arg_0

    return type(name, (xapi.Rpc_light_failure,), {"__init__": __init__, "__module__": module})


def _module_dispatcher(module_name: str, interfaces: Sequence[str]) -> type:
    def __init__(self: Any, **dispatchers: Any) -> None:
        unknown = set(dispatchers) - set(interfaces)
        if unknown:
            raise xapi.TypeError(f"interfaces {', '.join(interfaces)}", ", ".join(sorted(unknown)))
        for name in interfaces:
            setattr(self, name, dispatchers.get(name))
        self._dispatcher_dict = {name: getattr(dispatchers.get(name), "_dispatch", None) for name in interfaces}

    def _dispatch(self: Any, method: str, params: Sequence[Any]) -> Any:
        try:
            target = self._dispatcher_dict.get(method.split(".")[0])
            if target is None:
                raise xapi.UnknownMethod(method)
            return target(method, params)
        except xapi.Rpc_light_failure as failure:
            return failure.failure()
        except Exception as exn:
            return xapi.InternalError(str(exn)).failure()

    return type(f"{module_name}_server_dispatcher", (object,), {"__init__": __init__, "_dispatch": _dispatch})


def build(namespace: Dict[str, Any], module_name: str, table: Table, errors: Sequence[str]) -> None:
    """Fill a bindings module's namespace: xapi's helpers, the IDL errors and each interface's classes."""
    namespace.update({name: getattr(xapi, name) for name in xapi.__all__})
    module = namespace["__name__"]
    for error in errors:
        namespace[error] = _error_class(error, module)
    for interface, verbs in table:
        dispatcher = _server_dispatcher(interface, verbs)
        classes: Mapping[str, type] = {
            "server_dispatcher": dispatcher,
            "skeleton": _skeleton(interface, verbs, "skeleton"),
            "test": _skeleton(interface, verbs, "test"),
            "commandline": _commandline(interface, verbs, dispatcher),
        }
        for suffix, cls in classes.items():
            cls.__module__ = module
            namespace[f"{interface}_{suffix}"] = cls
    top = _module_dispatcher(module_name, [interface for interface, _ in table])
    top.__module__ = module
    namespace[f"{module_name}_server_dispatcher"] = top
