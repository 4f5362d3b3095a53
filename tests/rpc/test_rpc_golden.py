"""Golden tests: the exact bytes each transport puts on the wire, for a success and for every error class.

A throwaway driver returns fixed values (and raises a chosen error), so the HTTP response bodies are fully
determined; they are compared byte for byte with `golden/xmlrpc/*.xml` and `golden/jsonrpc/*.json`.
After an intended wire change, regenerate with `SMAPI_UPDATE_GOLDEN=1 pytest tests/rpc` and review the diff.

A few cases are also written out literally below, transcribed from the rpclib examples in the wire-format
reference, so the golden files cannot drift from xapi's format unnoticed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import jsonrpclib.jsonlib
import pytest

from smapi import Driver, Query_skeleton, SR_skeleton, VDI_skeleton
from smapi.interface import errors as E

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SMAPI_UPDATE_GOLDEN") == "1"
TIB = 2**40

#: VDI.stat raises the error named by its `vdi` argument
RAISE: Dict[str, Exception] = {
    "Sr_not_attached": E.Sr_not_attached("sr1"),
    "Vdi_does_not_exist": E.Vdi_does_not_exist("v1"),
    "Illegal_transition": E.Illegal_transition("Attached", "Detached"),
    "Backend_error": E.Backend_error("SR_BACKEND_FAILURE_46", ["", "The VDI is not available", ""]),
    "Unimplemented": E.Unimplemented("VDI.stat"),
    "Does_not_exist": E.Does_not_exist("vdi", "v1"),
    "Cancelled": E.Cancelled("task1"),
    "Redirect": E.Redirect("10.0.0.2"),
    "Sr_attached": E.Sr_attached("sr1"),
    "Missing_configuration_parameter": E.Missing_configuration_parameter("path"),
    "Internal_error": RuntimeError("boom"),  # a driver bug: the dispatcher turns it into Internal_error
}

FIXED_VDI = {
    "vdi": "v1", "content_id": "c1", "name_label": "disk & <data>", "name_description": "", "ty": "user",
    "metadata_of_pool": "", "is_a_snapshot": False, "snapshot_time": "19700101T00:00:00Z", "snapshot_of": "",
    "read_only": False, "virtual_size": 2 * TIB, "physical_utilisation": 4096, "persistent": True,
    "sm_config": {"key": "value"},
}


class FixedQuery(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {"driver": "fixed", "name": "Fixed", "description": "golden tests", "vendor": "smapi",
                "copyright": "none", "version": "1.0", "required_api_version": "2.0", "features": ["VDI_CREATE"],
                "configuration": {"path": "where"}}


class FixedSR(SR_skeleton):
    def ls(self, dbg: str) -> List[str]:
        return ["sr-a", "sr-b"]

    def detach(self, dbg: str, sr: str) -> None:
        return None


class FixedVDI(VDI_skeleton):
    def stat(self, dbg: str, sr: str, vdi: str) -> Dict[str, Any]:
        if vdi in RAISE:
            raise RAISE[vdi]
        return dict(FIXED_VDI)


class FixedDriver(Driver):
    name = "fixed"
    storage = {"Query": FixedQuery, "SR": FixedSR, "VDI": FixedVDI}


def _stat(vdi: str) -> Tuple[str, Any]:
    return "VDI.stat", [{"dbg": "d", "sr": "sr1", "vdi": vdi}]


#: case name -> (method, params) of the request
CASES: Dict[str, Tuple[str, Any]] = {
    "success_query": ("Query.query", [{"dbg": "d"}]),
    "success_vdi_stat_int64": _stat("v1"),
    "success_list": ("SR.ls", [{"dbg": "d"}]),
    "success_unit": ("SR.detach", [{"dbg": "d", "sr": "sr1"}]),
    **{f"error_{name}": _stat(name) for name in RAISE},
    "error_Unknown_method": ("VDI.nope", [{"dbg": "d"}]),
    "error_Invalid_argument": ("VDI.stat", [{"dbg": "d", "sr": "sr1"}]),
    "error_Bad_request": ("VDI.stat", ["not", "a struct"]),
}


def _xml_value(v: Any) -> str:
    # Hand-rolled on purpose: request bytes must not depend on the encoder under test.
    if isinstance(v, dict):
        members = "".join(f"<member><name>{k}</name>{_xml_value(x)}</member>" for k, x in v.items())
        return f"<value><struct>{members}</struct></value>"
    return f"<value>{v}</value>"


def xml_request(method: str, params: List[Any]) -> bytes:
    body = "".join(f"<param>{_xml_value(p)}</param>" for p in params)
    return f'<?xml version="1.0"?><methodCall><methodName>{method}</methodName><params>{body}</params>' \
        f"</methodCall>".encode()


def json_request(method: str, params: Any, version2: bool = True) -> bytes:
    call: Dict[str, Any] = {"jsonrpc": "2.0"} if version2 else {}
    call.update({"method": method, "params": params, "id": 7})
    return json.dumps(call).encode()


@pytest.fixture
def servers(start_server):
    dispatcher = FixedDriver().dispatcher("storage")
    return {p: start_server(dispatcher, p, "tcp") for p in ("xmlrpc", "jsonrpc")}


def _check_golden(path: Path, body: bytes) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    assert path.exists(), f"missing golden file {path}; run with SMAPI_UPDATE_GOLDEN=1 to create it"
    assert body == path.read_bytes(), path.name


@pytest.mark.parametrize("case", sorted(CASES))
def test_xmlrpc_golden(servers, raw, case):
    method, params = CASES[case]
    resp = raw(servers["xmlrpc"].endpoint, xml_request(method, params), headers={"Content-Type": "text/xml"})
    assert resp.status == 200 and resp.headers["content-type"] == "text/xml"
    _check_golden(GOLDEN / "xmlrpc" / f"{case}.xml", resp.body)


# jsonrpclib serialises with orjson/ujson/simplejson when one is installed; the JSON golden bytes are the stdlib's.
stdlib_json_only = pytest.mark.skipif(
    type(jsonrpclib.jsonlib.get_handler()) is not jsonrpclib.jsonlib.JsonHandler,
    reason="jsonrpclib uses a third-party JSON library here; golden JSON bytes are those of the stdlib json",
)


@stdlib_json_only
@pytest.mark.parametrize("case", sorted(CASES))
def test_jsonrpc_golden(servers, raw, case):
    method, params = CASES[case]
    resp = raw(servers["jsonrpc"].endpoint, json_request(method, params))
    assert resp.status == 200 and resp.headers["content-type"] == "application/json-rpc"
    _check_golden(GOLDEN / "jsonrpc" / f"{case}.json", resp.body)


@stdlib_json_only
@pytest.mark.parametrize("case", ["success_vdi_stat_int64", "success_unit", "error_Vdi_does_not_exist",
                                  "error_Backend_error"])
def test_jsonrpc_v1_golden(servers, raw, case):
    """JSON-RPC 1.0 calls (what xapi sends) get rpclib's 1.0 answer: the bare error variant in "error"."""
    method, params = CASES[case]
    resp = raw(servers["jsonrpc"].endpoint, json_request(method, params, version2=False))
    assert resp.status == 200
    _check_golden(GOLDEN / "jsonrpc" / f"v1_{case}.json", resp.body)


# --- literal expectations, transcribed from the reference's rpclib examples -------------------------------

HEAD = b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
TAIL = b"</struct></value></param></params></methodResponse>"


def test_xmlrpc_unit_success_is_nil_in_a_success_envelope(servers, raw):
    resp = raw(servers["xmlrpc"].endpoint, xml_request(*CASES["success_unit"]))
    assert resp.body == HEAD + (
        b"<member><name>Status</name><value>Success</value></member>"
        b"<member><name>Value</name><value><nil/></value></member>"
    ) + TAIL


def test_xmlrpc_backend_error_is_a_failure_envelope_not_a_fault(servers, raw):
    resp = raw(servers["xmlrpc"].endpoint, xml_request(*CASES["error_Backend_error"]))
    assert resp.body == HEAD + (
        b"<member><name>Status</name><value>Failure</value></member>"
        b"<member><name>ErrorDescription</name><value><array><data>"
        b"<value>Backend_error</value>"
        b"<value><array><data><value>SR_BACKEND_FAILURE_46</value>"
        b"<value><array><data><value></value><value>The VDI is not available</value><value></value>"
        b"</data></array></value></data></array></value>"
        b"</data></array></value></member>"
    ) + TAIL


def test_xmlrpc_int64_is_untyped_and_strings_escaped(servers, raw):
    body = raw(servers["xmlrpc"].endpoint, xml_request(*CASES["success_vdi_stat_int64"])).body
    assert b"<member><name>virtual_size</name><value>2199023255552</value></member>" in body
    assert b"<member><name>physical_utilisation</name><value>4096</value></member>" in body
    assert b"<member><name>name_label</name><value>disk &amp; &lt;data&gt;</value></member>" in body
    assert b"<member><name>read_only</name><value><boolean>0</boolean></value></member>" in body
    assert b"<fault>" not in body


def test_jsonrpc_error_carries_classic_code_wire_name_and_variant(servers, raw):
    resp = raw(servers["jsonrpc"].endpoint, json_request(*CASES["error_Unimplemented"]))
    assert json.loads(resp.body) == {
        "jsonrpc": "2.0", "id": 7,
        "error": {"code": 38, "message": "Unimplemented", "data": ["Unimplemented", "VDI.stat"]},
    }
    v1 = raw(servers["jsonrpc"].endpoint, json_request(*CASES["error_Sr_not_attached"], version2=False))
    assert json.loads(v1.body) == {"result": None, "error": ["Sr_not_attached", "sr1"], "id": 7}
