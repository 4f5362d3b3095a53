"""Bad input over both transports: each gets a typed error, and the server keeps answering good requests."""

from __future__ import annotations

import json
import socket
from typing import Any, Optional, Tuple

import pytest

from smapi.interface.errors import Bad_request, SmapiError
from smapi.rpc.client import connect
from smapi.rpc.listen import DEFAULT_MAX_REQUEST
from smapi.rpc.xmlcodec import decode_response

XML_DECL = b'<?xml version="1.0"?>'


def _xml_call(method: str, params: str) -> bytes:
    return XML_DECL + f"<methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>".encode()


def _struct(**members: str) -> str:
    inner = "".join(f"<member><name>{k}</name>{v}</member>" for k, v in members.items())
    return f"<param><value><struct>{inner}</struct></value></param>"


def xml_error(body: bytes) -> Tuple[str, Any]:
    """(wire name, payload) of the Failure envelope in `body`."""
    with pytest.raises(SmapiError) as info:
        decode_response(body)
    return info.value.wire_name, info.value.payload


def json_error(body: bytes) -> Tuple[int, str, Optional[Any]]:
    err = json.loads(body)["error"]
    return err["code"], err["message"], err.get("data")


@pytest.fixture
def xml_server(dirsr_dispatcher, start_server):
    return start_server(dirsr_dispatcher, "xmlrpc", "tcp")


@pytest.fixture
def json_server(dirsr_dispatcher, start_server):
    return start_server(dirsr_dispatcher, "jsonrpc", "tcp")


def assert_still_serving(running) -> None:
    with connect(running.url, timeout=5) as client:
        assert client.Query.query(dbg="after")["driver"] == "dirsr"


XML_BAD = {
    "malformed xml": (b"<methodCall><methodName>SR.ls</methodName><params>", "Bad_request"),
    "not xml at all": (b"\x00\xff garbage", "Bad_request"),
    "empty body": (b"", "Bad_request"),
    "a methodResponse": (XML_DECL + b"<methodResponse><params><param><value>x</value></param></params>"
                         b"</methodResponse>", "Bad_request"),
    "params not a struct": (_xml_call("SR.ls", "<param><value><int>3</int></value></param>"), "Bad_request"),
    "two params": (_xml_call("SR.ls", _struct(dbg="<value>x</value>") * 2), "Bad_request"),
    "wrong type": (_xml_call("VDI.stat", _struct(dbg="<value>x</value>", sr="<value>s</value>",
                                                 vdi="<value><int>5</int></value>")), "Invalid_argument"),
    "int64 not digits": (_xml_call("SR.create", _struct(
        dbg="<value>x</value>", sr="<value>s</value>", device_config="<value><struct></struct></value>",
        physical_size="<value>lots</value>")), "Invalid_argument"),
    "missing argument": (_xml_call("SR.scan", _struct(dbg="<value>x</value>")), "Invalid_argument"),
    "unknown method": (_xml_call("SR.frobnicate", _struct(dbg="<value>x</value>")), "Unknown_method"),
    "method of another api": (_xml_call("Volume.stat", _struct(dbg="<value>x</value>")), "Unknown_method"),
}


@pytest.mark.parametrize("case", sorted(XML_BAD))
def test_xmlrpc_bad_request_gets_typed_failure(xml_server, raw, case):
    body, expected = XML_BAD[case]
    resp = raw(xml_server.endpoint, body)
    assert resp.status == 200
    assert xml_error(resp.body)[0] == expected
    assert_still_serving(xml_server)


def test_xmlrpc_accepts_i8_int_and_untyped_int64(xml_server, raw, tmp_path):
    for encoding in ("<i8>1099511627776</i8>", "<int>1099511627776</int>", "1099511627776", "<i4>0</i4>"):
        path = tmp_path / encoding.replace("<", "").replace(">", "").replace("/", "")
        body = _xml_call("SR.create", _struct(
            dbg="<value>x</value>", sr="<value>s</value>",
            device_config=f"<value><struct><member><name>path</name><value>{path}</value></member></struct></value>",
            physical_size=f"<value>{encoding}</value>"))
        assert decode_response(raw(xml_server.endpoint, body).body) is None, encoding


JSON_BAD = {
    # name: (body, expected (code, message-or-prefix))
    "malformed json": (b'{"jsonrpc": "2.0", "method": ', (-32700, "Request")),
    "not a request object": (b"[]", (-32600, "Request invalid")),
    "no method": (b'{"jsonrpc": "2.0", "id": 1}', (-32600, "Invalid request")),
    "params a number": (b'{"jsonrpc": "2.0", "method": "SR.ls", "params": 5, "id": 1}', (-32600, "Invalid request")),
    "params not a struct": (b'{"jsonrpc": "2.0", "method": "SR.ls", "params": [1, 2], "id": 1}',
                            (143, "Bad_request")),
    "wrong type": (b'{"jsonrpc": "2.0", "method": "VDI.stat", "params": [{"dbg": "x", "sr": "s", "vdi": 5}],'
                   b' "id": 1}', (1, "Invalid_argument")),
    "missing argument": (b'{"jsonrpc": "2.0", "method": "SR.scan", "params": [{"dbg": "x"}], "id": 1}',
                         (1, "Invalid_argument")),
    "unknown method": (b'{"jsonrpc": "2.0", "method": "SR.frobnicate", "params": [{"dbg": "x"}], "id": 1}',
                       (143, "Unknown_method")),
}


@pytest.mark.parametrize("case", sorted(JSON_BAD))
def test_jsonrpc_bad_request_gets_typed_error(json_server, raw, case):
    body, (code, message) = JSON_BAD[case]
    resp = raw(json_server.endpoint, body)
    assert resp.status == 200
    got_code, got_message, data = json_error(resp.body)
    assert got_code == code and got_message.lower().startswith(message.lower())
    if code > 0:  # a SMAPI error: the variant travels in data
        assert data[0] == message
    assert_still_serving(json_server)


def test_jsonrpc_named_params_as_object_or_list(json_server, raw):
    for params in ([{"dbg": "x"}], {"dbg": "x"}):
        body = json.dumps({"jsonrpc": "2.0", "method": "SR.ls", "params": params, "id": 3}).encode()
        assert json.loads(raw(json_server.endpoint, body).body) == {"result": [], "id": 3, "jsonrpc": "2.0"}


# --- HTTP-level refusals: still typed bodies ------------------------------------------------------------


def _http_error(protocol: str, body: bytes) -> str:
    if protocol == "xmlrpc":
        return xml_error(body)[0]
    code, _, _ = json_error(body)
    return {-32600: "Bad_request"}.get(code, str(code))


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_http_refusals(dirsr_dispatcher, start_server, raw, protocol, kind):
    running = start_server(dirsr_dispatcher, protocol, kind)
    ep = running.endpoint

    too_big = raw(ep, b"", content_length=DEFAULT_MAX_REQUEST + 1)  # refused before the body is read
    assert too_big.status == 413 and _http_error(protocol, too_big.body) == "Bad_request"
    assert too_big.headers.get("connection") == "close"

    get = raw(ep, None, method="GET")
    assert get.status == 405 and get.headers["allow"] == "POST" and _http_error(protocol, get.body) == "Bad_request"

    wrong_path = raw(ep, b"<x/>", path="/elsewhere")
    assert wrong_path.status == 404 and _http_error(protocol, wrong_path.body) == "Bad_request"

    no_length = raw(ep, None, method="POST")
    assert no_length.status == 411 and _http_error(protocol, no_length.body) == "Bad_request"

    assert_still_serving(running)


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_configured_request_limit(dirsr_dispatcher, start_server, raw, protocol):
    running = start_server(dirsr_dispatcher, protocol, "unix", max_request=1024)
    assert raw(running.endpoint, b"", content_length=1025).status == 413
    assert_still_serving(running)
    # Through the client: the refusal becomes Bad_request (Unix socket: no TCP reset can eat the answer).
    with connect(running.url, timeout=5) as client, pytest.raises(Bad_request):
        client.SR.ls(dbg="x" * 2000)


def _exchange(address: Any, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_garbage_instead_of_http(dirsr_dispatcher, start_server, protocol):
    running = start_server(dirsr_dispatcher, protocol, "tcp")
    typed = b"Bad_request" if protocol == "xmlrpc" else b'"code": -32600'

    # Not even a request line (here: the start of a TLS handshake). http.server then assumes HTTP/0.9 and
    # sends the body alone; it is still the typed error.
    answer = _exchange(running.server.address, b"\x16\x03\x01 this is not HTTP\r\n\r\n")
    assert typed in answer and b"HTTP 400" in answer

    answer = _exchange(running.server.address, b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.") and b" 501 " in answer.split(b"\r\n", 1)[0] and typed in answer

    assert_still_serving(running)
