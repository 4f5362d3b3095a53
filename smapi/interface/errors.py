"""SMAPI errors as values with wire names.

Each error is an exception class that knows its wire name (`Sr_not_attached`), the type of its payload and
its numeric code for the classic (SMAPIv1) executable. Transports encode them:

* storage interface (XML-RPC / JSON-RPC): the rpclib variant, `["Sr_not_attached", "<sr>"]`, or the bare
  name for an error without payload;
* per-verb executables (SMAPIv3 convention): `{"code", "params", "backtrace"}`;
* classic executables: an XML-RPC fault with `classic_code`.

Drivers raise them directly: `raise Vdi_does_not_exist(vdi)`. Any other exception escaping a driver becomes
`Internal_error` at the dispatcher, so the caller always receives a typed error.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple
from typing import Type as PyType

from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.types import STRING, ListOf, Tuple_, Type, TypeCheckError

#: every error class by wire name; the client decodes errors through it
REGISTRY: Dict[str, PyType[SmapiError]] = {}


class SmapiError(Exception):
    """Base of every typed SMAPI error."""

    wire_name: ClassVar[str] = "Internal_error"
    #: the payload's type; None for a constant constructor
    payload_type: ClassVar[Optional[Type]] = STRING
    #: numeric fault code used by the classic executable (XE_SR_ERRORCODES numbering)
    classic_code: ClassVar[int] = 1200
    #: what the error means, from the interface definition
    description: ClassVar[str] = ""
    #: how to print it for a person; `{0}`, `{1}` are the payload members
    template: ClassVar[str] = "{0}"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "wire_name" in cls.__dict__:
            REGISTRY[cls.wire_name] = cls

    def __init__(self, *params: Any):
        self.params: Tuple[Any, ...] = self._normalise(params)
        super().__init__(*self.params)

    @classmethod
    def arity(cls) -> int:
        if cls.payload_type is None:
            return 0
        if isinstance(cls.payload_type, Tuple_):
            return len(cls.payload_type.items)
        return 1

    @classmethod
    def _normalise(cls, params: Sequence[Any]) -> Tuple[Any, ...]:
        if len(params) != cls.arity():
            raise TypeError(f"{cls.wire_name} takes {cls.arity()} parameter(s), got {len(params)}")
        if cls.payload_type is None:
            return ()
        try:
            if isinstance(cls.payload_type, Tuple_):
                return tuple(cls.payload_type.check(list(params), cls.wire_name))
            return (cls.payload_type.check(params[0], cls.wire_name),)
        except TypeCheckError as e:
            raise TypeError(str(e)) from None

    @property
    def payload(self) -> Any:
        """The payload as it appears on the wire (a tuple payload is a list)."""
        if self.payload_type is None:
            return None
        if isinstance(self.payload_type, Tuple_):
            return list(self.params)
        return self.params[0]

    def to_variant(self) -> Any:
        """The rpclib encoding: the bare name, or `[name, payload]`."""
        if self.payload_type is None:
            return self.wire_name
        return [self.wire_name, self.payload]

    @staticmethod
    def from_variant(value: Any) -> SmapiError:
        """Decode an rpclib-encoded error; anything unrecognisable becomes `Internal_error`."""
        if isinstance(value, str) and value in REGISTRY and REGISTRY[value].payload_type is None:
            return REGISTRY[value]()
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str) and value[0] in REGISTRY:
            cls = REGISTRY[value[0]]
            try:
                if cls.payload_type is None:
                    return cls()
                payload: Any = value[1] if len(value) > 1 else None
                if isinstance(cls.payload_type, Tuple_):
                    return cls(*payload)
                return cls(payload)
            except (TypeError, IndexError):
                pass
        return Internal_error(f"unrecognised error from the server: {value!r}")

    def message(self) -> str:
        """A sentence a person can act on."""
        try:
            return self.template.format(*self.params)
        except (IndexError, KeyError):  # pragma: no cover - template mistakes must not hide the error
            return f"{self.wire_name} {self.params!r}"

    def exec_code_params(self) -> Tuple[str, List[str]]:
        """`code` and `params` of the per-verb executable's failure object (SMAPIv3 convention).

        Python bindings generated from the IDL have no `code`, so their errors travel as
        `SR_BACKEND_FAILURE` with `[ClassName, args...]`; xapi-storage-script reads params[0] to recognise
        e.g. `Activated_on_another_host`.
        """
        return "SR_BACKEND_FAILURE", [self.wire_name, *(_flatten_str(p) for p in self.params)]

    def __str__(self) -> str:
        return f"{self.wire_name}: {self.message()}"


def _flatten_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(_flatten_str(v) for v in value)
    return str(value)


# --- the nine errors of the storage interface (seed 001) -------------------------------------------------


class Sr_not_attached(SmapiError):
    wire_name = "Sr_not_attached"
    description = "An SR must be attached in order to access VDIs"
    classic_code = CLASSIC_CODES["SRUnavailable"][0]
    template = "SR {0} is not attached on this host; attach it first (SR.attach)"


class Vdi_does_not_exist(SmapiError):
    wire_name = "Vdi_does_not_exist"
    description = "The specified VDI could not be found in the SR"
    classic_code = CLASSIC_CODES["VDIMissing"][0]
    template = "VDI {0} does not exist in this SR; list the SR's VDIs with SR.scan"


class Illegal_transition(SmapiError):
    wire_name = "Illegal_transition"
    payload_type = Tuple_((STRING, STRING))
    description = "The requested VDI state transition is invalid"
    classic_code = CLASSIC_CODES["VDIUnavailable"][0]
    template = "the VDI cannot go from state {0} to state {1}"


class Backend_error(SmapiError):
    wire_name = "Backend_error"
    payload_type = Tuple_((STRING, ListOf(STRING)))
    description = "A backend-specific error occurred"
    template = "{0}: {1}"

    @classmethod
    def classic(cls, name: str, opterr: str = "") -> Backend_error:
        """The backend failure the classic storage manager raises for error `name` (e.g. "SRNoSpace").

        Encoded as xapi encodes SMAPIv1 faults: `SR_BACKEND_FAILURE_<code>` with `["", reason, ""]`.
        """
        code, text = CLASSIC_CODES[name]
        reason = f"{text} [opterr={opterr}]" if opterr else text
        return cls(f"SR_BACKEND_FAILURE_{code}", ["", reason, ""])

    @property
    def code(self) -> str:
        return self.params[0]

    @property
    def backend_params(self) -> List[str]:
        return list(self.params[1])

    @property
    def classic_code(self) -> int:  # type: ignore[override]
        prefix = "SR_BACKEND_FAILURE_"
        if self.code.startswith(prefix) and self.code[len(prefix):].isdigit():
            return int(self.code[len(prefix):])
        return CLASSIC_CODES["SMGeneral"][0]

    def message(self) -> str:
        detail = [p for p in self.backend_params if p]
        return f"{self.code}: {'; '.join(detail)}" if detail else self.code

    def exec_code_params(self) -> Tuple[str, List[str]]:
        return self.code, self.backend_params


class Unimplemented(SmapiError):
    wire_name = "Unimplemented"
    description = "The operation has not been implemented"
    classic_code = CLASSIC_CODES["Unimplemented"][0]
    template = "{0} is not implemented by this driver"


class Does_not_exist(SmapiError):
    wire_name = "Does_not_exist"
    payload_type = Tuple_((STRING, STRING))
    description = "The object does not exist"
    classic_code = CLASSIC_CODES["InvalidArg"][0]
    template = "{0} {1} does not exist"


class Cancelled(SmapiError):
    wire_name = "Cancelled"
    description = "The task has been asynchronously cancelled"
    classic_code = CLASSIC_CODES["SMGeneral"][0]
    template = "task {0} was cancelled"


class Redirect(SmapiError):
    wire_name = "Redirect"
    description = "The request should be resent to this address"
    classic_code = CLASSIC_CODES["SMGeneral"][0]
    template = "send this request to {0} instead"


class Sr_attached(SmapiError):
    wire_name = "Sr_attached"
    description = "The operation cannot be performed because the SR is still attached"
    classic_code = CLASSIC_CODES["SRInUse"][0]
    template = "SR {0} is still attached; detach it first (SR.detach)"


STORAGE_ERRORS: Tuple[PyType[SmapiError], ...] = (
    Sr_not_attached, Vdi_does_not_exist, Illegal_transition, Backend_error, Unimplemented, Does_not_exist,
    Cancelled, Redirect, Sr_attached,
)

# --- SMAPIv3 (xapi-storage) errors ------------------------------------------------------------------------


class SR_does_not_exist(SmapiError):
    wire_name = "SR_does_not_exist"
    description = "The SR does not exist"
    classic_code = CLASSIC_CODES["SRUnavailable"][0]
    template = "SR {0} does not exist"


class Volume_does_not_exist(SmapiError):
    wire_name = "Volume_does_not_exist"
    description = "The volume does not exist"
    classic_code = CLASSIC_CODES["VDIMissing"][0]
    template = "volume {0} does not exist in this SR"


class Activated_on_another_host(SmapiError):
    wire_name = "Activated_on_another_host"
    description = "The volume is activated on another host; the operation must run there"
    classic_code = CLASSIC_CODES["VDIInUse"][0]
    template = "the volume is active on host {0}; run the operation there or deactivate it first"


V3_ERRORS: Tuple[PyType[SmapiError], ...] = (
    Sr_not_attached, SR_does_not_exist, Volume_does_not_exist, Unimplemented, Cancelled,
    Activated_on_another_host,
)

# --- errors of the framework itself (bad requests, driver bugs) -------------------------------------------


class Internal_error(SmapiError):
    wire_name = "Internal_error"
    description = "The server failed unexpectedly; the message says where"
    classic_code = CLASSIC_CODES["GenericException"][0]
    template = "internal error: {0}"


class Unknown_method(SmapiError):
    wire_name = "Unknown_method"
    description = "The method name is not part of the interface being served"
    classic_code = CLASSIC_CODES["BadRequest"][0]
    template = "no such method {0}"


class Invalid_argument(SmapiError):
    wire_name = "Invalid_argument"
    payload_type = Tuple_((STRING, STRING))
    description = "An argument is missing or has the wrong type; the payload names it and says what is wrong"
    classic_code = CLASSIC_CODES["InvalidArg"][0]
    template = "argument {0}: {1}"


class Bad_request(SmapiError):
    wire_name = "Bad_request"
    description = "The request could not be decoded (malformed XML/JSON, wrong shape, too large)"
    classic_code = CLASSIC_CODES["BadRequest"][0]
    template = "bad request: {0}"


class Missing_configuration_parameter(SmapiError):
    wire_name = "Missing_configuration_parameter"
    description = "A required device_config / configuration key is missing"
    classic_code = CLASSIC_CODES["InvalidArg"][0]
    template = "the configuration needs key {0!r}"


FRAMEWORK_ERRORS: Tuple[PyType[SmapiError], ...] = (
    Internal_error, Unknown_method, Invalid_argument, Bad_request, Missing_configuration_parameter,
)

# --- Transfer API errors (seed 000) -------------------------------------------------------------------------


class VDINotFound(SmapiError):
    wire_name = "VDINotFound"
    description = "The VDI uuid is not known to this host"
    classic_code = CLASSIC_CODES["VDIMissing"][0]
    template = "VDI {0} is not known to this host (no attached SR holds it)"


class VDIInUse(SmapiError):
    wire_name = "VDIInUse"
    description = "The VDI is already exposed or in use"
    classic_code = CLASSIC_CODES["VDIInUse"][0]
    template = "VDI {0} is already exposed or attached; unexpose or detach it first"


class SnapshotTreeTooLong(SmapiError):
    wire_name = "SnapshotTreeTooLong"
    description = "The number of snapshots is 15 or greater"
    classic_code = CLASSIC_CODES["SnapshotChainTooLong"][0]
    template = "the snapshot tree is too long: {0}"


class VDINotInUse(SmapiError):
    wire_name = "VDINotInUse"
    description = "The VDI is not currently exposed by the transfer service"
    classic_code = CLASSIC_CODES["VDIUnavailable"][0]
    template = "VDI {0} is not exposed"


class LogsNotFound(SmapiError):
    wire_name = "LogsNotFound"
    description = "The exposure's log files could not be found in time"
    classic_code = CLASSIC_CODES["SMGeneral"][0]
    template = "no logs found for {0}"


class ArgumentError(SmapiError):
    wire_name = "ArgumentError"
    description = "A Transfer API argument is missing or invalid"
    classic_code = CLASSIC_CODES["InvalidArg"][0]
    template = "{0}"


TRANSFER_ERRORS: Tuple[PyType[SmapiError], ...] = (
    VDINotFound, VDIInUse, SnapshotTreeTooLong, VDINotInUse, LogsNotFound, ArgumentError,
)


def error_from_exec(code: str, params: Sequence[Any]) -> SmapiError:
    """Decode a per-verb executable's `{code, params}` failure back into a typed error."""
    params = [p if isinstance(p, str) else str(p) for p in params]
    if code == "SR_BACKEND_FAILURE" and params and params[0] in REGISTRY:
        cls = REGISTRY[params[0]]
        rest = params[1:]
        if cls is Backend_error and len(rest) >= 1:
            return Backend_error(rest[0], rest[1:])
        try:
            if cls.arity() == len(rest):
                return cls(*rest)
            if cls.arity() == 1:
                return cls(", ".join(rest))
        except TypeError:
            pass
    return Backend_error(code, params)
