"""Bounded work per client: trickling clients are dropped, connections are capped, and bodies that cannot be parsed
(invalid UTF-8, nesting deeper than the parser allows) get the transport's typed parse error."""

from __future__ import annotations

import json
import socket
import time

import pytest

from smapi.interface.errors import SmapiError
from smapi.rpc.client import connect
from smapi.rpc.xmlcodec import decode_response

PROTOCOLS = ("xmlrpc", "jsonrpc")


def _tcp(running) -> socket.socket:
    host, port = running.server.address
    return socket.create_connection((host, port), timeout=10)


def _still_serving(running) -> None:
    with connect(running.url, timeout=5) as client:
        assert client.Query.query(dbg="after")["driver"] == "dirsr"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_trickling_client_is_dropped_at_the_deadline(dirsr_dispatcher, start_server, protocol):
    running = start_server(dirsr_dispatcher, protocol, "tcp", request_deadline=1.0, request_timeout=30.0)
    sock = _tcp(running)
    started = time.monotonic()
    dropped = False
    try:
        # One byte every 0.2 s never trips the 30 s per-read timeout; only the request deadline ends it.
        for byte in b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - started > 5:
                break
    except OSError:
        dropped = True
    if not dropped:
        sock.settimeout(5)
        try:
            dropped = sock.recv(1) == b""
        except OSError:
            dropped = True
    sock.close()
    assert dropped, "the trickling client was still connected"
    assert time.monotonic() - started < 5
    _still_serving(running)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connections_past_the_cap_get_503(dirsr_dispatcher, start_server, protocol):
    running = start_server(dirsr_dispatcher, protocol, "tcp", max_connections=2, request_deadline=30.0)
    idle = [_tcp(running) for _ in range(2)]
    try:
        time.sleep(0.2)  # both accepted and holding their threads
        extra = _tcp(running)
        extra.settimeout(5)
        answer = b""
        while True:
            chunk = extra.recv(4096)
            if not chunk:
                break
            answer += chunk
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503")
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 5
    while True:  # the slots come back once the idle connections are gone
        try:
            _still_serving(running)
            break
        except (SmapiError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_jsonrpc_invalid_utf8_is_a_parse_error(dirsr_dispatcher, start_server, raw):
    running = start_server(dirsr_dispatcher, "jsonrpc", "tcp")
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "Query.query", "params": {"dbg": "\xff\xfe"}}'
    resp = raw(running.endpoint, body)
    assert resp.status == 200
    err = json.loads(resp.body)["error"]
    assert err["code"] == -32700
    assert "UTF-8" in err["message"]
    _still_serving(running)


def test_jsonrpc_deep_nesting_is_a_parse_error(dirsr_dispatcher, start_server, raw):
    running = start_server(dirsr_dispatcher, "jsonrpc", "tcp")
    depth = 100_000
    body = (b'{"jsonrpc": "2.0", "id": 1, "method": "Query.query", "params": ' + b"[" * depth + b"]" * depth
            + b"}")
    resp = raw(running.endpoint, body)
    err = json.loads(resp.body)["error"]
    assert err["code"] == -32700, err
    _still_serving(running)


@pytest.mark.parametrize("depth", [200, 100_000])
def test_xmlrpc_deep_nesting_is_bad_request(dirsr_dispatcher, start_server, raw, depth):
    running = start_server(dirsr_dispatcher, "xmlrpc", "tcp")
    nested = "<value><array><data>" * depth + "</data></array></value>" * depth
    body = (f'<?xml version="1.0"?><methodCall><methodName>Query.query</methodName><params><param>{nested}'
            f"</param></params></methodCall>").encode()
    resp = raw(running.endpoint, body)
    with pytest.raises(SmapiError) as info:
        decode_response(resp.body)
    assert info.value.wire_name in ("Bad_request", "Invalid_argument"), info.value
    _still_serving(running)
