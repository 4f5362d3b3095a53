"""The classic (SMAPIv1) executable: `<Type>SR '<methodCall>...'`.

xapi runs `/opt/xensource/sm/<Type>SR` with exactly one argument, an XML-RPC methodCall holding one struct
(command, args, device_config, sr_uuid, vdi_uuid, ...), and reads one methodResponse from stdout. Errors
travel as XML-RPC faults with numeric codes and the process always exits 0, as the classic storage manager
does. `sr_get_driver_info` answers from the driver's Query without constructing an SR.

Commands are translated to the storage-interface verbs of the driver (through the same dispatcher as every
other transport), so a driver written once answers all generations.
"""

from __future__ import annotations

import sys
import xmlrpc.client
from typing import IO, Any, Callable, Dict, List, Optional, Sequence
from xml.parsers.expat import ExpatError

from smapi.interface.classic import COMMANDS, ClassicCommand, driver_info
from smapi.interface.classic_codes import CLASSIC_CODES, fault_string
from smapi.interface.errors import (
    Backend_error,
    Bad_request,
    Internal_error,
    Invalid_argument,
    SmapiError,
    Unimplemented,
)
from smapi.interface.types import BOOL, TypeCheckError

#: the datapath id classic calls use: xapi's SMAPIv1 path has one datapath per host and VDI
CLASSIC_DP = "classic"


def fault_response(code: int, message: str) -> str:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True, allow_none=True)


def error_fault(err: SmapiError) -> str:
    """The fault sm's drivers answer: the numeric code, and `description [opterr=detail]` as the string."""
    if isinstance(err, Backend_error):
        detail = "; ".join(p for p in err.backend_params if p) or err.code
    else:
        detail = err.message()
    return fault_response(err.classic_code, fault_string(err.classic_code, detail))


def value_response(value: Any) -> str:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True)


def parse_request(argv: Sequence[str]) -> Dict[str, Any]:
    if len(argv) != 2:
        raise Bad_request(f"expected exactly one argument (an XML-RPC methodCall), got {len(argv) - 1}")
    try:
        params, method = xmlrpc.client.loads(argv[1])
    except (ExpatError, ValueError, TypeError, LookupError, xmlrpc.client.Error) as e:
        # xmlrpc.client reports structural mistakes in many ways (a <fault> raises Fault, an unknown tag
        # ResponseError, a member without a value IndexError): all are a malformed request, fault 143.
        raise Bad_request(f"argument is not an XML-RPC methodCall: {type(e).__name__}: {e}") from None
    if len(params) != 1 or not isinstance(params[0], dict):
        raise Bad_request("expected a single struct as the methodCall's only parameter")
    request = dict(params[0])
    request.setdefault("command", method)
    return request


def _arg_value(cmd: ClassicCommand, index: int, raw: Any) -> Any:
    spec = cmd.args[index]
    if spec.type is BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise Invalid_argument(f"args[{index}] ({spec.name})", f"expected \"true\" or \"false\", got {raw!r}")
    try:
        return spec.type.check(raw, f"args[{index}] ({spec.name})")
    except TypeCheckError as e:
        raise Invalid_argument(e.where, f"expected {e.expected}") from None


def check_request(request: Dict[str, Any]) -> ClassicCommand:
    command = request.get("command")
    cmd = COMMANDS.get(command) if isinstance(command, str) else None
    if cmd is None:
        raise Bad_request(f"unknown command {command!r}")
    args = request.get("args", [])
    if not isinstance(args, list):
        raise Invalid_argument("args", "expected an array of strings")
    if len(args) < len(cmd.args):
        missing = ", ".join(a.name for a in cmd.args[len(args):])
        raise Invalid_argument("args", f"{command} needs {len(cmd.args)} positional args; missing {missing}")
    if not cmd.static and not isinstance(request.get("device_config"), dict):
        raise Invalid_argument("device_config", "missing (a struct of strings)")
    for key in cmd.keys:
        if not isinstance(request.get(key), str) or not request[key]:
            raise Invalid_argument(key, f"{command} needs {key}")
    request["args"] = [_arg_value(cmd, i, a) for i, a in enumerate(args[: len(cmd.args)])]
    return cmd


class ClassicAdapter:
    """Translates classic commands into storage-interface calls through a dispatcher-like `call`."""

    def __init__(self, call: Callable[[str, Dict[str, Any]], Any], request: Dict[str, Any]):
        self.call = call
        self.req = request
        self.dbg = request.get("subtask_of") or f"classic:{request['command']}"

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def sr(self) -> str:
        return self.req["sr_uuid"]

    @property
    def vdi(self) -> str:
        # The storage interface keys VDIs by location; xapi passes both and they are equal for our drivers.
        return self.req.get("vdi_location") or self.req["vdi_uuid"]

    def _v(self, verb: str, **args: Any) -> Any:
        return self.call(verb, {"dbg": self.dbg, **args})

    @staticmethod
    def _vdi_ref(info: Dict[str, Any]) -> Dict[str, str]:
        return {"uuid": info["vdi"], "location": info["vdi"]}

    # -- commands ------------------------------------------------------------------------------------------
    def sr_create(self, size: int) -> None:
        self._v("SR.create", sr=self.sr, device_config=self.req["device_config"], physical_size=size)

    def sr_delete(self) -> None:
        # sm's drivers refuse to delete an SR that still holds VDIs (xapi destroys them first); the storage
        # interface's SR.destroy would take them along.
        remaining = self._v("SR.scan", sr=self.sr)
        if remaining:
            raise Backend_error.classic("SRNotEmpty", f"the SR still holds {len(remaining)} VDI(s)")
        self._v("SR.destroy", sr=self.sr)

    def sr_attach(self) -> None:
        self._v("SR.attach", sr=self.sr, device_config=self.req["device_config"])

    def sr_detach(self) -> None:
        self._v("SR.detach", sr=self.sr)

    def sr_scan(self) -> None:
        self._v("SR.scan", sr=self.sr)

    def sr_update(self) -> None:
        self._v("SR.stat", sr=self.sr)

    def sr_content_type(self) -> str:
        return "user"

    def sr_probe(self) -> str:
        result = self._v("SR.probe", device_config=self.req.get("device_config", {}),
                         sm_config=self.req.get("sr_sm_config") or {})
        if isinstance(result, list) and result[0] == "Raw":
            return result[1]
        return probe_xml(result[1])

    def vdi_create(self, size: int, name_label: str, name_description: str, metadata_of_pool: str,
                   is_a_snapshot: bool, snapshot_time: str, snapshot_of: str, read_only: bool) -> Dict[str, str]:
        info = {
            "vdi": self.req.get("vdi_uuid", ""), "virtual_size": size, "name_label": name_label,
            "name_description": name_description, "metadata_of_pool": metadata_of_pool,
            "is_a_snapshot": is_a_snapshot, "snapshot_of": snapshot_of, "read_only": read_only,
            "sm_config": self.req.get("vdi_sm_config") or {},
        }
        if snapshot_time:
            info["snapshot_time"] = snapshot_time
        return self._vdi_ref(self._v("VDI.create", sr=self.sr, vdi_info=info))

    def vdi_delete(self) -> None:
        self._v("VDI.destroy", sr=self.sr, vdi=self.vdi)

    def vdi_update(self) -> None:
        self._v("VDI.stat", sr=self.sr, vdi=self.vdi)

    def vdi_attach(self, writable: bool) -> Dict[str, Any]:
        device = self._v("VDI.attach", dp=CLASSIC_DP, sr=self.sr, vdi=self.vdi, read_write=writable)
        # blktap2's shape: xapi builds XenDisk{params_nbd} from it, and treats any `params` as a block device
        # path (BlockDevice{params}), so `params` is given only when it is one.
        result = {
            "params_nbd": device.get("params_nbd", ""), "o_direct": device.get("o_direct", True),
            "o_direct_reason": device.get("o_direct_reason", ""), "xenstore_data": device.get("xenstore_data", {}),
        }
        if str(device.get("params", "")).startswith("/dev/"):
            result["params"] = device["params"]
        return result

    def vdi_detach(self) -> None:
        self._v("VDI.detach", dp=CLASSIC_DP, sr=self.sr, vdi=self.vdi)

    def vdi_activate(self, writable: bool) -> None:
        self._v("VDI.activate", dp=CLASSIC_DP, sr=self.sr, vdi=self.vdi)

    def vdi_deactivate(self) -> None:
        self._v("VDI.deactivate", dp=CLASSIC_DP, sr=self.sr, vdi=self.vdi)

    def vdi_epoch_begin(self) -> None:
        self._v("VDI.epoch_begin", sr=self.sr, vdi=self.vdi)

    def vdi_epoch_end(self) -> None:
        self._v("VDI.epoch_end", sr=self.sr, vdi=self.vdi)

    def _copy_verb(self, verb: str) -> Dict[str, str]:
        info = self._v("VDI.stat", sr=self.sr, vdi=self.vdi)
        return self._vdi_ref(self._v(verb, sr=self.sr, vdi_info=info))

    def vdi_snapshot(self) -> Dict[str, str]:
        return self._copy_verb("VDI.snapshot")

    def vdi_clone(self) -> Dict[str, str]:
        return self._copy_verb("VDI.clone")

    def vdi_resize(self, new_size: int) -> Dict[str, str]:
        self._v("VDI.resize", sr=self.sr, vdi=self.vdi, new_size=new_size)
        return {"uuid": self.req["vdi_uuid"], "location": self.vdi}

    vdi_resize_online = vdi_resize

    def vdi_compose(self, vdi1: str) -> None:
        self._v("VDI.compose", sr=self.sr, vdi1=vdi1, vdi2=self.vdi)

    def vdi_enable_cbt(self) -> None:
        self._v("VDI.enable_cbt", sr=self.sr, vdi=self.vdi)

    def vdi_disable_cbt(self) -> None:
        self._v("VDI.disable_cbt", sr=self.sr, vdi=self.vdi)

    def vdi_data_destroy(self) -> None:
        self._v("VDI.data_destroy", sr=self.sr, vdi=self.vdi)

    def vdi_list_changed_blocks(self, vdi_to: str) -> str:
        # sm's drivers resolve args[0], an OpaqueRef, through XenAPI; without a session it must be a uuid.
        if vdi_to.startswith("OpaqueRef:"):
            raise Invalid_argument("args[0] (vdi_to)", f"{vdi_to} is a XenAPI reference; pass the VDI's uuid")
        return self._v("VDI.list_changed_blocks", sr=self.sr, vdi_from=self.vdi, vdi_tp=vdi_to)

    def vdi_generate_config(self) -> str:
        call = {
            "device_config": self.req["device_config"], "sr_uuid": self.sr, "vdi_uuid": self.req["vdi_uuid"],
            "command": "vdi_attach_from_config",
        }
        if "vdi_location" in self.req:
            call["vdi_location"] = self.req["vdi_location"]
        return xmlrpc.client.dumps((call,), "vdi_attach_from_config")

    def vdi_attach_from_config(self) -> Dict[str, Any]:
        return self.vdi_attach(True)

    vdi_detach_from_config = vdi_detach


def probe_xml(probes: List[Dict[str, Any]]) -> str:
    """The `<SRlist>` document classic drivers print for sr_probe."""
    from xml.sax.saxutils import escape

    parts = ["<?xml version=\"1.0\" ?>", "<SRlist>"]
    for p in probes:
        sr = p.get("sr")
        if not sr:
            continue
        parts.append("\t<SR>")
        parts.append(f"\t\t<UUID>{escape(str(sr.get('sr_uuid') or ''))}</UUID>")
        parts.append(f"\t\t<Size>{int(sr.get('total_space', 0))}</Size>")
        parts.append(f"\t\t<FreeSpace>{int(sr.get('free_space', 0))}</FreeSpace>")
        parts.append(f"\t\t<Name>{escape(str(sr.get('name_label', '')))}</Name>")
        parts.append("\t</SR>")
    parts.append("</SRlist>")
    return "\n".join(parts) + "\n"


def driver_info_from_query(query: Dict[str, Any]) -> Dict[str, Any]:
    capabilities = list(query["features"])
    return driver_info.make(
        name=query["name"], description=query["description"], vendor=query["vendor"],
        copyright=query["copyright"], driver_version=query["version"],
        required_api_version=query["required_api_version"] or "1.0", capabilities=capabilities,
        configuration=[{"key": k, "description": v} for k, v in query["configuration"].items()],
    )


def handle(request: Dict[str, Any], driver_ref: str) -> Any:
    """Run one classic request; returns the result value or raises SmapiError."""
    from smapi.core.driver import load_driver

    cmd = check_request(request)
    driver = load_driver(driver_ref)
    dispatcher = driver.dispatcher("storage")
    if cmd.name == "sr_get_driver_info":
        # Only the Query implementation is consulted: no SR is constructed, no session is needed.
        return driver_info_from_query(dispatcher.call("Query.query", {"dbg": "sr_get_driver_info"}))
    adapter = ClassicAdapter(dispatcher.call, request)
    method = getattr(adapter, cmd.name, None)
    if method is None:
        raise Unimplemented(cmd.name)
    return method(*request["args"])


def run(driver_ref: str, argv: Sequence[str], stdout: IO[str]) -> int:
    try:
        request = parse_request(argv)
        result = handle(request, driver_ref)
        out = value_response(result)
    except SmapiError as e:
        out = error_fault(e)
    except Exception as e:  # always answer with a fault, as SRCommand does
        err = Internal_error(f"{type(e).__name__}: {e}")
        out = fault_response(CLASSIC_CODES["GenericException"][0],
                             fault_string(CLASSIC_CODES["GenericException"][0], err.message()))
    stdout.write(out)
    stdout.flush()
    return 0


def main(driver_ref: str, argv: Optional[List[str]] = None) -> int:
    return run(driver_ref, sys.argv if argv is None else argv, sys.stdout)
