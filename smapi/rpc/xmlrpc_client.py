"""Client side of the XML-RPC transport: one methodCall per POST, the envelope decoded into value or error."""

from __future__ import annotations

from typing import Any, Dict

from smapi.interface.errors import Bad_request, Internal_error, SmapiError
from smapi.interface.model import Method
from smapi.interface.types import Record
from smapi.rpc.httpclient import HttpEndpoint
from smapi.rpc.xmlcodec import decode_response, encode_call, read_envelope


def params_record(wire_name: str, method: Method) -> Record:
    """The method's parameters as one record type, so the encoder knows which arguments are int64."""
    return Record(wire_name, tuple(p.as_field() for p in method.params))


class XmlRpcTransport:
    """Sends calls to an XML-RPC server. A fresh connection per call keeps it safe to share between threads."""

    def __init__(self, endpoint: HttpEndpoint):
        self.endpoint = endpoint

    def call(self, wire_name: str, args: Dict[str, Any], method: Method) -> Any:
        body = encode_call(wire_name, args, params_record(wire_name, method))
        conn = self.endpoint.connection()
        try:
            conn.request("POST", self.endpoint.path, body, {"Content-Type": "text/xml"})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise _http_error(response.status, response.reason, data)
        return decode_response(data)

    def close(self) -> None:
        pass


def _http_error(status: int, reason: str, data: bytes) -> SmapiError:
    """The typed error in a refusal's body (smapi servers send one), else one made from the HTTP status."""
    try:
        envelope = read_envelope(data)
    except SmapiError:
        envelope = None
    if envelope is not None and envelope["Status"] == "Failure":
        return SmapiError.from_variant(envelope.get("ErrorDescription"))
    if 400 <= status < 500:
        return Bad_request(f"HTTP {status} {reason}")
    return Internal_error(f"HTTP {status} {reason}")
