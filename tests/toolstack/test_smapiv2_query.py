"""SMAPIv2 Query.query carries what today's xapi client requires beyond seed 001 (xapi-idl storage_interface.ml
`query_result`: a reply without them fails to unmarshal), over the wire as well as from the dispatcher."""

from __future__ import annotations

import json

import pytest

from smapi.core.driver import load_driver
from smapi.rpc.jsonrpc import make_jsonrpc_server
from tests.conftest import EXAMPLE_DRIVER

DRIVERS = ("file", "lvm", "iscsi", "smapi.drivers.nfs:NfsDriver")


def _query(spec: str) -> dict:
    driver = load_driver(spec)
    return driver.dispatcher("storage").call("Query.query", {"dbg": "t"})


@pytest.mark.parametrize("spec", DRIVERS)
def test_engine_drivers_answer_todays_fields(spec: str) -> None:
    q = _query(spec)
    assert q["smapi_version"] == "SMAPIv2"
    assert q["required_cluster_stack"] == []
    assert q["supported_image_formats"] == ["vhd", "raw"]


def test_a_driver_that_says_nothing_gets_the_defaults(example_state) -> None:
    q = _query(EXAMPLE_DRIVER)
    assert (q["smapi_version"], q["required_cluster_stack"], q["supported_image_formats"]) == ("SMAPIv2", [], [])


def test_the_fields_travel_over_json_rpc(tmp_path, example_state) -> None:
    import http.client
    import socket
    import threading

    driver = load_driver(EXAMPLE_DRIVER)
    path = str(tmp_path / "s.sock")
    server = make_jsonrpc_server(driver.dispatcher("storage"), unix_path=path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("localhost")
        conn.sock = socket.socket(socket.AF_UNIX)
        conn.sock.connect(path)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "Query.query", "params": [{"dbg": "t"}]})
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        result = json.loads(conn.getresponse().read())["result"]
        assert {"smapi_version", "supported_image_formats", "required_cluster_stack"} <= set(result)
    finally:
        server.shutdown()
        server.server_close()
