"""The XML-RPC codec on its own: int64 by type, escaping, what decodes and what is refused."""

from __future__ import annotations

import xmlrpc.client

import pytest

from smapi.core.dispatcher import Dispatcher
from smapi.interface.apis import get_api
from smapi.interface.errors import Bad_request, Internal_error, Unimplemented, Vdi_does_not_exist
from smapi.interface.storage import vdi_info
from smapi.interface.types import INT64, ListOf, Optional_
from smapi.rpc.xmlcodec import (
    NotRepresentable,
    decode_call,
    decode_response,
    encode_call,
    encode_failure,
    encode_success,
    encode_value,
)
from smapi.rpc.xmlrpc import handle_request


def test_int64_is_untyped_by_type_and_small_plain_ints_are_int():
    assert encode_value(5, INT64) == "<value>5</value>"
    assert encode_value(5, Optional_(INT64)) == "<value>5</value>"
    assert encode_value([1, 2], ListOf(INT64)) == (
        "<value><array><data><value>1</value><value>2</value></data></array></value>")
    assert encode_value(5) == "<value><int>5</int></value>"
    # Beyond 32 bits there is no choice left: untyped, never Python's OverflowError.
    assert encode_value(2**40) == "<value>1099511627776</value>"
    assert encode_value(-(2**63)) == f"<value>{-(2**63)}</value>"


def test_record_fields_take_their_declared_types():
    text = encode_value(vdi_info.make(virtual_size=7, physical_utilisation=3), vdi_info)
    assert "<member><name>virtual_size</name><value>7</value></member>" in text
    assert "<int>" not in text


def test_scalars_and_escaping():
    assert encode_value(None) == "<value><nil/></value>"
    assert encode_value(True) == "<value><boolean>1</boolean></value>"
    assert encode_value(1.5) == "<value><double>1.5</double></value>"
    assert encode_value("a&b<c>\r\n") == "<value>a&amp;b&lt;c&gt;&#13;\n</value>"
    assert encode_value({}) == "<value><struct></struct></value>"
    assert encode_value(("x", 1)) == (
        "<value><array><data><value>x</value><value><int>1</int></value></data></array></value>")


def test_strings_survive_a_round_trip_through_the_stdlib_parser():
    text = "tab\t cr\r lf\n amp& lt< gt> quote\" unicode é ✓"
    (value,), _ = xmlrpc.client.loads(encode_success(text))
    assert value["Value"] == text


def test_unrepresentable_strings():
    with pytest.raises(NotRepresentable):
        encode_success("nul\x00")
    # Error text is human text: replaced rather than lost.
    with pytest.raises(Internal_error) as info:
        decode_response(encode_failure(Internal_error("bad\x00byte")))
    assert info.value.params == ("bad\ufffdbyte",)


def test_a_result_xml_cannot_carry_becomes_internal_error():
    class Q:
        def diagnostics(self, dbg):
            return "nul\x00"

    d = Dispatcher(get_api("storage"), {"Query": Q()})
    with pytest.raises(Internal_error, match="cannot be sent over XML-RPC"):
        decode_response(handle_request(d, encode_call("Query.diagnostics", {"dbg": "x"})))


def test_decode_call_accepts_the_int64_encodings():
    for enc, expected in (("<i8>4398046511104</i8>", 4398046511104), ("<int>4398046511104</int>", 4398046511104),
                          ("4398046511104", "4398046511104"), ("<string>12</string>", "12")):
        body = (f"<methodCall><methodName>VDI.resize</methodName><params><param><value><struct>"
                f"<member><name>new_size</name><value>{enc}</value></member></struct></value></param></params>"
                f"</methodCall>").encode()
        method, params = decode_call(body)
        assert method == "VDI.resize" and params == [{"new_size": expected}]
        assert INT64.check(params[0]["new_size"], "new_size") == 4398046511104 or enc.startswith("<string>")


def test_encode_call_puts_named_args_in_one_struct():
    body = encode_call("SR.attach", {"dbg": "d", "sr": "s", "device_config": {"path": "/p"}})
    assert body == (b'<?xml version="1.0"?><methodCall><methodName>SR.attach</methodName><params><param><value>'
                    b"<struct><member><name>dbg</name><value>d</value></member><member><name>sr</name><value>s</value>"
                    b"</member><member><name>device_config</name><value><struct><member><name>path</name><value>/p"
                    b"</value></member></struct></value></member></struct></value></param></params></methodCall>")
    assert decode_call(body) == ("SR.attach", [{"dbg": "d", "sr": "s", "device_config": {"path": "/p"}}])


@pytest.mark.parametrize("body", [b"", b"<a>", b"not xml", b"<methodCall></methodCall>",
                                  xmlrpc.client.dumps(("x",), methodresponse=True).encode(),
                                  xmlrpc.client.dumps(xmlrpc.client.Fault(1, "f"), methodresponse=True).encode()])
def test_decode_call_refuses_anything_but_a_method_call(body):
    with pytest.raises(Bad_request):
        decode_call(body)


def test_decode_response():
    assert decode_response(encode_success(None)) is None
    assert decode_response(encode_success({"a": [1, "b"]})) == {"a": [1, "b"]}
    with pytest.raises(Vdi_does_not_exist):
        decode_response(encode_failure(Vdi_does_not_exist("v")))
    with pytest.raises(Unimplemented):
        decode_response(encode_failure(Unimplemented("X.y")))
    # What a classic SMAPIv1 server or a stranger might answer: typed, never a raw exception.
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(38, "no"), methodresponse=True).encode()
    for body in (fault, b"junk", xmlrpc.client.dumps(({"Status": "Odd"},), methodresponse=True).encode(),
                 xmlrpc.client.dumps((["Unknown_thing", "x"],), methodresponse=True).encode()):
        with pytest.raises(Internal_error):
            decode_response(body)
    unknown_error = xmlrpc.client.dumps(({"Status": "Failure", "ErrorDescription": ["Nope", "x"]},),
                                        methodresponse=True).encode()
    with pytest.raises(Internal_error, match="unrecognised error"):
        decode_response(unknown_error)
