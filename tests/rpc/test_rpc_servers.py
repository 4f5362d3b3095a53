"""Server behaviour beyond single calls: where they listen, socket files, concurrency, client timeouts."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest

from smapi import Driver, Query_skeleton, SR_skeleton
from smapi.rpc.client import connect
from smapi.rpc.jsonrpc import make_jsonrpc_server
from smapi.rpc.xmlrpc import make_xmlrpc_server

MAKERS = {"xmlrpc": make_xmlrpc_server, "jsonrpc": make_jsonrpc_server}


@pytest.fixture
def dispatcher(dirsr_dispatcher):
    return dirsr_dispatcher


@pytest.mark.parametrize("protocol", sorted(MAKERS))
@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com", ""])
def test_remote_bind_refused_without_allow_remote(dispatcher, protocol, host):
    with pytest.raises(ValueError, match="allow_remote"):
        MAKERS[protocol](dispatcher, host=host)


@pytest.mark.parametrize("protocol", sorted(MAKERS))
def test_loopback_by_default_and_remote_when_allowed(dispatcher, protocol):
    server = MAKERS[protocol](dispatcher)
    try:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
    finally:
        server.server_close()
    server = MAKERS[protocol](dispatcher, host="0.0.0.0", allow_remote=True)
    try:
        assert server.address[0] == "0.0.0.0"
    finally:
        server.server_close()


@pytest.mark.parametrize("protocol", sorted(MAKERS))
def test_ipv6_loopback(dispatcher, start_server, protocol):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = MAKERS[protocol](dispatcher, host="::1")
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    try:
        assert server.address[0] == "::1"
    finally:
        server.server_close()


@pytest.mark.parametrize("protocol", sorted(MAKERS))
def test_unix_socket_files(dispatcher, sock_dir, protocol):
    path = os.path.join(sock_dir, "s.sock")
    # A socket file left behind by a dead server is replaced...
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    server = MAKERS[protocol](dispatcher, unix_path=path)
    try:
        assert server.address == path
        # ...but a live server's socket is never stolen.
        with pytest.raises(OSError) as info:
            MAKERS[protocol](dispatcher, unix_path=path)
        assert info.value.errno == errno.EADDRINUSE
    finally:
        server.server_close()
    assert not os.path.exists(path), "closing the server removes its socket file"

    regular = os.path.join(sock_dir, "file")
    open(regular, "w").close()
    with pytest.raises(OSError):
        MAKERS[protocol](dispatcher, unix_path=regular)
    assert os.path.isfile(regular), "a non-socket file is never removed"


class _Gate:
    """SR.ls blocks until the gate opens; Query.query answers at once."""

    entered = threading.Event()
    release = threading.Event()


class SlowSR(SR_skeleton):
    def ls(self, dbg: str) -> list:
        _Gate.entered.set()
        _Gate.release.wait(10)
        return ["slow"]


class FastQuery(Query_skeleton):
    def diagnostics(self, dbg: str) -> str:
        return "fast"


class SlowDriver(Driver):
    name = "slow"
    storage = {"SR": SlowSR, "Query": FastQuery}


@pytest.fixture
def gate():
    _Gate.entered.clear()
    _Gate.release.clear()
    yield _Gate
    _Gate.release.set()  # never leave a server thread blocked


@pytest.mark.parametrize("protocol", sorted(MAKERS))
@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_a_slow_call_does_not_block_others(start_server, gate, protocol, kind):
    running = start_server(SlowDriver().dispatcher("storage"), protocol, kind)
    results = []
    slow = threading.Thread(target=lambda: results.append(connect(running.url, timeout=10).SR.ls(dbg="s")))
    slow.start()
    assert gate.entered.wait(5)
    started = time.monotonic()
    assert connect(running.url, timeout=5).Query.diagnostics(dbg="f") == "fast"
    assert time.monotonic() - started < 2
    gate.release.set()
    slow.join(5)
    assert results == [["slow"]]


@pytest.mark.parametrize("protocol", sorted(MAKERS))
def test_client_timeout(start_server, gate, protocol):
    running = start_server(SlowDriver().dispatcher("storage"), protocol, "unix")
    with connect(running.url, timeout=0.3) as client, pytest.raises(TimeoutError):
        client.SR.ls(dbg="s")
