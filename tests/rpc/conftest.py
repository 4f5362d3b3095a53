"""Fixtures for the transport tests: real servers in threads, on Unix sockets and on 127.0.0.1:0."""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from smapi.core.dispatcher import Dispatcher
from smapi.core.driver import load_driver
from smapi.rpc.httpclient import HttpEndpoint
from smapi.rpc.jsonrpc import make_jsonrpc_server
from smapi.rpc.xmlrpc import make_xmlrpc_server

#: the example driver shipped in the package (it reads $SMAPI_EXAMPLE_STATE on every call)
DIRSR = "smapi.examples.dirsr:DirSR"

PROTOCOLS = ("xmlrpc", "jsonrpc")
KINDS = ("unix", "tcp")


@dataclass
class Running:
    """A server serving in a thread, and how to reach it."""

    server: Any
    protocol: str
    kind: str
    url: str
    endpoint: HttpEndpoint


@pytest.fixture
def sock_dir() -> Iterator[str]:
    # Unix socket paths are limited to ~108 bytes; pytest's tmp_path can be longer than that.
    d = tempfile.mkdtemp(prefix="smapi-rpc-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dirsr_dispatcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dispatcher:
    """The example driver, with its attached-SR state in this test's tmp dir."""
    monkeypatch.setenv("SMAPI_EXAMPLE_STATE", str(tmp_path / "state"))
    driver = load_driver(DIRSR)
    return driver.dispatcher("storage")


@pytest.fixture
def start_server(sock_dir: str) -> Iterator[Callable[..., Running]]:
    """`start(dispatcher, protocol, kind, **server_kwargs)`; every server is shut down and closed afterwards."""
    started: List[Tuple[Any, threading.Thread]] = []

    def start(dispatcher: Dispatcher, protocol: str = "xmlrpc", kind: str = "tcp", **kwargs: Any) -> Running:
        make = make_xmlrpc_server if protocol == "xmlrpc" else make_jsonrpc_server
        if kind == "unix":
            path = f"{sock_dir}/{protocol}-{len(started)}.sock"
            server = make(dispatcher, unix_path=path, **kwargs)
            endpoint = HttpEndpoint(unix_path=path, timeout=10)
            url = f"{protocol}+unix://{path}"
        else:
            server = make(dispatcher, **kwargs)
            host, port = server.address
            endpoint = HttpEndpoint(host=host, port=port, timeout=10)
            url = f"{protocol}+http://{host}:{port}"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        return Running(server, protocol, kind, url, endpoint)

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)
        assert not thread.is_alive()


@dataclass
class RawResponse:
    status: int
    headers: Dict[str, str]
    body: bytes


def raw_request(endpoint: HttpEndpoint, body: Optional[bytes], *, method: str = "POST", path: str = "/",
                headers: Optional[Dict[str, str]] = None, content_length: Optional[int] = None) -> RawResponse:
    """Send exactly what the test says (no client library in between) and return what came back.

    `content_length` overrides the header without sending a body of that size (for the 413 tests).
    """
    conn = endpoint.connection()
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if content_length is not None:
            conn.putheader("Content-Length", str(content_length))
        elif body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None and content_length is None:
            conn.send(body)
        resp = conn.getresponse()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.fixture
def raw() -> Callable[..., RawResponse]:
    return raw_request
