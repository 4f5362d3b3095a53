"""The Transfer API as a XenAPI host plugin: `/etc/xapi.d/plugins/transfer` (bin/transfer).

xapi runs the plugin with one argument, an XML-RPC methodCall `<fn>(session_id, {str: str})`, and reads an
XML-RPC methodResponse from stdout (XenAPIPlugin.dispatch):

* success: `{"Status": "Success", "Value": <the string result>}`;
* failure: `{"Status": "Failure", "ErrorDescription": ["XENAPI_PLUGIN_FAILURE", <fn>, <error class>, <message>]}`,
  where the class is the Transfer error's name (VDINotFound, VDIInUse, ArgumentError, ...), which callers test;
* an unknown function: `["UNKNOWN_XENAPI_PLUGIN_FUNCTION", <fn>]`.

The session id is not used: smapi reaches SRs through the host's run state, not through xapi. Function names are
the API's, plus the original plugin's `prepare_transfervm_template` spelling.
"""

from __future__ import annotations

import sys
import xmlrpc.client
from typing import Any, List, Optional

ALIASES = {"prepare_transfervm_template": "prepare_transfer_vm_template"}


def _message(value: Any) -> str:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=False)


def success_message(result: str) -> str:
    return _message({"Status": "Success", "Value": result})


def failure_message(description: List[str]) -> str:
    return _message({"Status": "Failure", "ErrorDescription": description})


def handle(call: str) -> str:
    from smapi.interface.apis import get_api
    from smapi.interface.errors import Invalid_argument, SmapiError
    from smapi.transfer.driver import TransferDriver

    try:
        params, method = xmlrpc.client.loads(call)
    except Exception as e:  # any malformed input: answer in the convention, never a traceback
        return failure_message(["XENAPI_PLUGIN_FAILURE", "", "ArgumentError", f"bad methodCall: {e}"])
    method = method or ""
    name = ALIASES.get(method, method)
    api = get_api("transfer")
    if api.lookup(f"Transfer.{name}") is None:
        return failure_message(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", method])
    args = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
    args = {str(k): v for k, v in args.items()}
    try:
        return success_message(TransferDriver().call("transfer", f"Transfer.{name}", **args))
    except Invalid_argument as e:
        # A missing or mistyped argument is the plugin's ArgumentError, as pluginlib.validate_exists raised.
        return failure_message(["XENAPI_PLUGIN_FAILURE", method, "ArgumentError", e.message()])
    except SmapiError as e:
        return failure_message(["XENAPI_PLUGIN_FAILURE", method, e.wire_name, e.message()])
    except Exception as e:  # noqa: BLE001 - the plugin convention reports every exception by class name
        return failure_message(["XENAPI_PLUGIN_FAILURE", method, type(e).__name__, str(e)])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) != 2:
        print("usage: transfer '<methodCall>...</methodCall>' (run by xapi as a host plugin)", file=sys.stderr)
        return 2
    sys.stdout.write(handle(argv[1]) + "\n")
    return 0
