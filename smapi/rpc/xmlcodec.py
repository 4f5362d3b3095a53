"""XML-RPC bytes as rpclib (xapi) writes and reads them; pure functions, no sockets.

Encoding follows rpclib's non-strict mode, which is what xapi sends and expects:

* strings are untyped `<value>text</value>` (not `<string>`);
* int64 values are untyped too, `<value>2199023255552</value>`: Python's own Marshaller would raise
  OverflowError above 2^31 and `<i8>` is only written by rpclib in strict mode. Which ints are int64 is known
  by walking the value together with its declared type;
* unit is `<nil/>`, records and string maps are structs, lists/tuples/variants with payload are arrays;
* a response is always `{Status: "Success", Value: v}` or `{Status: "Failure", ErrorDescription: e}`, never an
  XML-RPC `<fault>`.

Decoding uses the standard library's XML-RPC unmarshaller, which already accepts `<i8>`, `<int>`, `<i4>`,
untyped values and `<nil/>`; untyped int64 values arrive as digit strings and the interface types' `check`
turns them back into ints.
"""

from __future__ import annotations

import re
import xmlrpc.client
from typing import Any, Dict, List, Optional, Tuple

from smapi.interface.errors import Bad_request, Internal_error, SmapiError
from smapi.interface.types import (
    Alias,
    ListOf,
    Optional_,
    Record,
    StringMap,
    Tuple_,
    Type,
    Variant,
    _Int64,
)

XML_DECL = '<?xml version="1.0"?>'
_I4_MIN, _I4_MAX = -(2**31), 2**31 - 1

# Characters XML 1.0 cannot carry at all, not even as character references.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class NotRepresentable(ValueError):
    """A value XML-RPC cannot carry (e.g. a string with a NUL byte)."""


def _escape(text: str, lossy: bool) -> str:
    if _INVALID_XML.search(text):
        if not lossy:
            raise NotRepresentable(f"string {text[:40]!r}... contains characters XML cannot carry")
        text = _INVALID_XML.sub("\ufffd", text)
    # \r would be normalised to \n by any XML parser; a character reference survives.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _unwrap(t: Optional[Type]) -> Optional[Type]:
    while isinstance(t, (Alias, Optional_)):
        t = t.base if isinstance(t, Alias) else t.item
    return t


def _member_type(t: Optional[Type], key: str) -> Optional[Type]:
    if isinstance(t, Record):
        try:
            return t.field(key).type
        except KeyError:
            return None
    return None  # a StringMap's members are strings; untyped is right for them


def _item_type(t: Optional[Type], index: int, value: List[Any]) -> Optional[Type]:
    if isinstance(t, ListOf):
        return t.item
    if isinstance(t, Tuple_) and index < len(t.items):
        return t.items[index]
    if isinstance(t, Variant) and index == 1 and isinstance(value[0], str):
        try:
            return t.case(value[0]).payload
        except KeyError:
            return None
    return None


def encode_value(value: Any, type_: Optional[Type] = None, lossy: bool = False) -> str:
    """One `<value>` element. `type_` says which ints are int64; `lossy` replaces unencodable characters."""
    out: List[str] = []
    _encode(value, type_, lossy, out)
    return "".join(out)


def _encode(value: Any, type_: Optional[Type], lossy: bool, out: List[str]) -> None:
    t = _unwrap(type_)
    if value is None:
        out.append("<value><nil/></value>")
    elif isinstance(value, bool):
        out.append(f"<value><boolean>{int(value)}</boolean></value>")
    elif isinstance(value, int):
        if isinstance(t, _Int64) or not _I4_MIN <= value <= _I4_MAX:
            out.append(f"<value>{value}</value>")  # rpclib non-strict int64
        else:
            out.append(f"<value><int>{value}</int></value>")
    elif isinstance(value, float):
        out.append(f"<value><double>{value!r}</double></value>")
    elif isinstance(value, str):
        out.append(f"<value>{_escape(value, lossy)}</value>")
    elif isinstance(value, dict):
        out.append("<value><struct>")
        for k, v in value.items():
            key = str(k)
            out.append(f"<member><name>{_escape(key, lossy)}</name>")
            _encode(v, None if isinstance(t, StringMap) else _member_type(t, key), lossy, out)
            out.append("</member>")
        out.append("</struct></value>")
    elif isinstance(value, (list, tuple)):
        items = list(value)
        out.append("<value><array><data>")
        for i, v in enumerate(items):
            _encode(v, _item_type(t, i, items), lossy, out)
        out.append("</data></array></value>")
    else:
        raise NotRepresentable(f"cannot encode a {type(value).__name__} in XML-RPC")


def _response(struct_members: str) -> bytes:
    return (
        f"{XML_DECL}<methodResponse><params><param><value><struct>{struct_members}</struct></value></param>"
        "</params></methodResponse>"
    ).encode()


def encode_success(value: Any, type_: Optional[Type] = None) -> bytes:
    """`{Status: "Success", Value: value}`; raises NotRepresentable for values XML cannot carry."""
    return _response(
        "<member><name>Status</name><value>Success</value></member>"
        f"<member><name>Value</name>{encode_value(value, type_)}</member>"
    )


def encode_failure(err: SmapiError) -> bytes:
    """`{Status: "Failure", ErrorDescription: <error variant>}`; error text never fails to encode."""
    return _response(
        "<member><name>Status</name><value>Failure</value></member>"
        f"<member><name>ErrorDescription</name>{encode_value(err.to_variant(), lossy=True)}</member>"
    )


def encode_call(method: str, args: dict, params_type: Optional[Record] = None) -> bytes:
    """A methodCall with the named arguments as ONE struct, as rpclib's GenClient sends it."""
    return (
        f"{XML_DECL}<methodCall><methodName>{_escape(method, False)}</methodName><params><param>"
        f"{encode_value(args, params_type)}</param></params></methodCall>"
    ).encode()


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 200 else text[:197] + "..."


def decode_call(body: bytes) -> Tuple[str, List[Any]]:
    """`(method name, positional params)` of a methodCall; raises Bad_request for anything else."""
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception as e:  # expat, unmarshaller and fault errors alike mean "not a usable request"
        raise Bad_request(f"malformed XML-RPC request ({_short(e)})") from None
    if not isinstance(method, str) or not method:
        raise Bad_request("not an XML-RPC methodCall (no methodName)")
    return method, list(params)


def read_envelope(body: bytes) -> Dict[str, Any]:
    """The Status struct of a methodResponse; Internal_error when the body is not one."""
    try:
        params, _ = xmlrpc.client.loads(body, use_builtin_types=True)
    except xmlrpc.client.Fault as f:
        # rpclib never sends faults; a classic (SMAPIv1-style) server does.
        raise Internal_error(f"XML-RPC fault {f.faultCode}: {f.faultString}") from None
    except Exception as e:
        raise Internal_error(f"malformed XML-RPC response ({_short(e)})") from None
    envelope = params[0] if len(params) == 1 else None
    if not isinstance(envelope, dict) or envelope.get("Status") not in ("Success", "Failure"):
        raise Internal_error(f"response is not a Status envelope: {str(params)[:200]}")
    return envelope


def decode_response(body: bytes) -> Any:
    """The `Value` of a Success envelope, or raise the SmapiError of a Failure envelope.

    Values come back untyped (int64 as digit strings); check them against the method's result type.
    """
    envelope = read_envelope(body)
    if envelope["Status"] == "Failure":
        raise SmapiError.from_variant(envelope.get("ErrorDescription"))
    return envelope.get("Value")
