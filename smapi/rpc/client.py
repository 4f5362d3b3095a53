"""The Python client: `connect(url)` and call verbs as attributes, generated from the API definitions.

    from smapi.rpc.client import connect

    with connect("xmlrpc+unix:///var/run/smapi.sock") as c:
        c.SR.attach(dbg="x", sr="sr1", device_config={"path": "/srv/sr1"})
        info = c.VDI.stat(dbg="x", sr="sr1", vdi="v1")      # int64 fields come back as int
        # a server-side error is raised as its typed class, e.g. smapi.interface.errors.Vdi_does_not_exist

URLs:
    http://HOST:PORT[/path]          XML-RPC over TCP (also `xmlrpc+http://`)
    xmlrpc+unix:///path.sock         XML-RPC over a Unix socket
    jsonrpc+http://HOST:PORT[/path]  JSON-RPC 2.0 over TCP
    jsonrpc+unix:///path.sock        JSON-RPC 2.0 over a Unix socket
    exec:///plugin/dir               per-verb executables `<dir>/<Interface.verb> --json`

Arguments are checked against the definition before anything is sent, with the same `Invalid_argument` the
server would raise; results are checked and normalised (int64 from XML-RPC's untyped values become ints).
Transport failures (refused connection, timeout) are raised as OSError / TimeoutError, not SMAPI errors.
"""

from __future__ import annotations

from typing import Any, Dict, List, Protocol, Sequence
from urllib.parse import urlsplit

from smapi.core.dispatcher import Dispatcher
from smapi.interface.apis import get_api
from smapi.interface.errors import Invalid_argument, Unknown_method
from smapi.interface.model import Api, Interface, Method
from smapi.rpc.exec_client import ExecTransport
from smapi.rpc.httpclient import DEFAULT_TIMEOUT, HttpEndpoint
from smapi.rpc.jsonrpc_client import JsonRpcTransport
from smapi.rpc.xmlrpc_client import XmlRpcTransport

SCHEMES = ("http", "xmlrpc+http", "xmlrpc+unix", "jsonrpc+http", "jsonrpc+unix", "exec")


class Transport(Protocol):
    def call(self, wire_name: str, args: Dict[str, Any], method: Method) -> Any: ...

    def close(self) -> None: ...


def make_transport(url: str, timeout: float = DEFAULT_TIMEOUT) -> Transport:
    """The transport a URL names (see the module docstring); ValueError for anything else."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("xmlrpc+unix", "jsonrpc+unix", "exec"):
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{url!r}: expected {scheme}:///absolute/path")
        if scheme == "exec":
            return ExecTransport(parts.path, timeout)
        endpoint = HttpEndpoint(unix_path=parts.path, timeout=timeout)
    elif scheme in ("http", "xmlrpc+http", "jsonrpc+http"):
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host")
        endpoint = HttpEndpoint(host=parts.hostname, port=parts.port or 80, path=parts.path or "/",
                                timeout=timeout)
    else:
        raise ValueError(f"{url!r}: unsupported scheme {parts.scheme!r}; use one of {', '.join(SCHEMES)}")
    if scheme.startswith("jsonrpc"):
        return JsonRpcTransport(endpoint)
    return XmlRpcTransport(endpoint)


def bind_args(method: Method, wire_name: str, args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Named arguments from a Python call; positional ones follow the definition's order."""
    names = [p.name for p in method.params]
    if len(args) > len(names):
        raise Invalid_argument("(positional)", f"{wire_name} takes at most {len(names)} arguments: "
                                               f"{', '.join(names)}")
    named = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise Invalid_argument(k, f"not an argument of {wire_name} (expects {', '.join(names)})")
        if k in named:
            raise Invalid_argument(k, f"given twice in the call of {wire_name}")
        named[k] = v
    return named


class Verb:
    """One callable verb, e.g. `client.SR.attach`."""

    def __init__(self, client: Client, iface: Interface, method: Method):
        self._client = client
        self.wire_name = f"{iface.name}.{method.name}"
        self.method = method
        params = ", ".join(f"{p.name}: {p.type.doc()}" for p in method.params)
        result = method.result.type.doc() if method.result else "None"
        self.__doc__ = f"{self.wire_name}({params}) -> {result}\n\n{method.description}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.invoke(self.wire_name, self.method, bind_args(self.method, self.wire_name, args, kwargs))

    def __repr__(self) -> str:
        return f"<verb {self.wire_name}>"


class InterfaceProxy:
    """The verbs of one interface as attributes, e.g. `client.SR`."""

    def __init__(self, client: Client, iface: Interface):
        self._client = client
        self._iface = iface

    def __getattr__(self, name: str) -> Verb:
        if name.startswith("__"):
            raise AttributeError(name)
        for method in self._iface.methods:
            if method.name == name:
                return Verb(self._client, self._iface, method)
        verbs = ", ".join(m.name for m in self._iface.methods)
        raise AttributeError(f"{self._iface.name} has no verb {name!r}; it has: {verbs}")

    def __dir__(self) -> List[str]:
        return [m.name for m in self._iface.methods]

    def __repr__(self) -> str:
        return f"<interface {self._iface.name}>"


class Client:
    """Calls the verbs of one API over one transport. Use `connect()` to make one."""

    def __init__(self, api: Api, transport: Transport, url: str = ""):
        self.api = api
        self.transport = transport
        self.url = url

    def __getattr__(self, name: str) -> InterfaceProxy:
        if name.startswith("_"):
            raise AttributeError(name)
        for iface in self.api.interfaces:
            if iface.name == name:
                return InterfaceProxy(self, iface)
        names = ", ".join(i.name for i in self.api.interfaces)
        raise AttributeError(f"the {self.api.name} API has no interface {name!r}; it has: {names}")

    def __dir__(self) -> List[str]:
        return [*super().__dir__(), *(i.name for i in self.api.interfaces)]

    def call(self, wire_name: str, **kwargs: Any) -> Any:
        """Call a verb by its wire name (`"SR.attach"`, case-insensitive)."""
        found = self.api.lookup(wire_name)
        if found is None:
            raise Unknown_method(wire_name)
        iface, method = found
        name = f"{iface.name}.{method.name}"
        return self.invoke(name, method, bind_args(method, name, (), kwargs))

    def invoke(self, wire_name: str, method: Method, named: Dict[str, Any]) -> Any:
        checked = Dispatcher.check_args(method, named, wire_name)
        # An absent optional argument is omitted, as rpclib omits a None option.
        send = {p.name: v for p, v in zip(method.params, checked) if v is not None}
        raw = self.transport.call(wire_name, send, method)
        return Dispatcher.check_result(method, wire_name, raw)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<smapi client {self.api.name} at {self.url}>"


def connect(url: str, api: str = "storage", *, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A client for `api` ("storage", "v3", "transfer") at `url`; `timeout` in seconds per call."""
    return Client(get_api(api), make_transport(url, timeout), url)
