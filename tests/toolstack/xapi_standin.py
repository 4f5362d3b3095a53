"""A stand-in for xapi's XenAPI endpoint: XML-RPC over a Unix socket, with an in-memory database to assert on.

Built from seed 003 (the XenAPI reference: every call takes the session ref first and answers
`{Status: Success, Value}` or `{Status: Failure, ErrorDescription: [code, ...]}`; SESSION_INVALID, HANDLE_INVALID
and UUID_INVALID errors) and from upstream facts for the calls seed 003 predates: sm's `VDI._db_introduce` passes
`VDI.db_introduce` 19 arguments (uuid, name_label, name_description, SR, type, sharable, read_only, other_config,
location, xenstore_data, sm_config, managed, virtual_size, physical_utilisation, metadata_of_pool, is_a_snapshot,
snapshot_time, snapshot_of, cbt_enabled) and forgets records with `VDI.db_forget`. The XenAPI client reaches
it as it reaches xapi (`http://<socket path with '/' as '_'>/`), so the socket path has no '_'.

Only the calls smapi's classic executables make (and the few a test uses) are implemented; any other call
answers MESSAGE_METHOD_UNKNOWN, so a new use shows up as a failure, not as silent success.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socketserver
import threading
import xmlrpc.client
from typing import Any, Callable, Dict, List, Optional
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

NULL = "OpaqueRef:NULL"


class XapiFailure(Exception):
    def __init__(self, *description: str):
        super().__init__(*description)
        self.description = [str(d) for d in description]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer, SimpleXMLRPCDispatcher):
    daemon_threads = True
    logRequests = False

    def __init__(self, path: str, dispatch: Callable[[str, tuple], Any]):
        socketserver.UnixStreamServer.__init__(self, path, _Handler)
        SimpleXMLRPCDispatcher.__init__(self, allow_none=True, encoding=None)
        self.register_instance(_Instance(dispatch))


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ()  # xapi answers on any path
    disable_nagle_algorithm = False  # TCP_NODELAY does not apply to a Unix socket

    def address_string(self) -> str:  # a Unix socket peer has no host name
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Instance:
    def __init__(self, dispatch: Callable[[str, tuple], Any]):
        self._dispatch_fn = dispatch

    def _dispatch(self, method: str, params: tuple) -> Any:
        return self._dispatch_fn(method, params)


def _check(value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise XapiFailure("FIELD_TYPE_ERROR", what)


class XapiStandIn:
    """`with XapiStandIn() as xapi:` serves on `xapi.socket`; `xapi.vdis_of(sr_ref)` is the VDI table of an SR."""

    def __init__(self) -> None:
        # XenAPI's unix transport maps every '_' of the URL's host to '/': the path must have none.
        self.dir = f"/tmp/smapi-xapi-{os.getpid()}-{secrets.token_hex(4)}"
        self.socket = os.path.join(self.dir, "xapi")
        self.sessions: Dict[str, str] = {}
        self.srs: Dict[str, Dict[str, Any]] = {}
        self.vdis: Dict[str, Dict[str, Any]] = {}
        self.calls: List[str] = []
        self.lock = threading.Lock()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> XapiStandIn:
        os.makedirs(self.dir)
        self._server = _Server(self.socket, self.dispatch)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return "http://" + self.socket.replace("/", "_") + "/"

    # -- database helpers for tests ----------------------------------------------------------------------------
    def sr_introduce(self, uuid: str, name_label: str = "sr") -> str:
        ref = f"OpaqueRef:{secrets.token_hex(8)}"
        self.srs[ref] = {"uuid": uuid, "name_label": name_label}
        return ref

    def vdis_of(self, sr_ref: str) -> Dict[str, Dict[str, Any]]:
        """The SR's VDI records, by location."""
        with self.lock:
            return {r["location"]: dict(r) for r in self.vdis.values() if r["SR"] == sr_ref}

    def ref_of(self, uuid: str) -> str:
        return self._vdi_by_uuid(uuid)

    # -- the wire ------------------------------------------------------------------------------------------
    def dispatch(self, method: str, params: tuple) -> Dict[str, Any]:
        with self.lock:
            self.calls.append(method)
            try:
                return {"Status": "Success", "Value": self._call(method, list(params))}
            except XapiFailure as e:
                return {"Status": "Failure", "ErrorDescription": e.description}

    def _call(self, method: str, params: List[Any]) -> Any:
        if method in ("session.login_with_password", "session.slave_local_login_with_password"):
            ref = f"OpaqueRef:{secrets.token_hex(8)}"
            self.sessions[ref] = method
            return ref
        if not params or params[0] not in self.sessions:
            raise XapiFailure("SESSION_INVALID", str(params[0] if params else ""))
        session, args = params[0], params[1:]
        if method in ("session.logout", "session.local_logout"):
            del self.sessions[session]
            return ""
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)
        try:
            return handler(*args)
        except TypeError:
            raise XapiFailure("MESSAGE_PARAMETER_COUNT_MISMATCH", method) from None

    # -- SR ----------------------------------------------------------------------------------------------
    def _sr(self, ref: str) -> Dict[str, Any]:
        if ref not in self.srs:
            raise XapiFailure("HANDLE_INVALID", "SR", ref)
        return self.srs[ref]

    def _SR_get_by_uuid(self, uuid: str) -> str:
        for ref, record in self.srs.items():
            if record["uuid"] == uuid:
                return ref
        raise XapiFailure("UUID_INVALID", "SR", uuid)

    def _SR_get_VDIs(self, ref: str) -> List[str]:
        self._sr(ref)
        return [v for v, r in self.vdis.items() if r["SR"] == ref]

    # -- VDI ----------------------------------------------------------------------------------------------
    def _vdi(self, ref: str) -> Dict[str, Any]:
        if ref not in self.vdis:
            raise XapiFailure("HANDLE_INVALID", "VDI", ref)
        return self.vdis[ref]

    def _vdi_by_uuid(self, uuid: str) -> str:
        for ref, record in self.vdis.items():
            if record["uuid"] == uuid:
                return ref
        raise XapiFailure("UUID_INVALID", "VDI", uuid)

    def _VDI_get_by_uuid(self, uuid: str) -> str:
        return self._vdi_by_uuid(uuid)

    def _VDI_get_record(self, ref: str) -> Dict[str, Any]:
        return dict(self._vdi(ref))

    def _VDI_get_uuid(self, ref: str) -> str:
        return self._vdi(ref)["uuid"]

    def _VDI_get_location(self, ref: str) -> str:
        return self._vdi(ref)["location"]

    def _VDI_get_sm_config(self, ref: str) -> Dict[str, str]:
        return dict(self._vdi(ref)["sm_config"])

    def _VDI_db_introduce(self, uuid: str, name_label: str, name_description: str, sr: str, ty: str,
                          sharable: bool, read_only: bool, other_config: Dict[str, str], location: str,
                          xenstore_data: Dict[str, str], sm_config: Dict[str, str], managed: bool,
                          virtual_size: str, physical_utilisation: str, metadata_of_pool: str,
                          is_a_snapshot: bool, snapshot_time: Any, snapshot_of: str, cbt_enabled: bool) -> str:
        for name, value, kind in (("uuid", uuid, str), ("name_label", name_label, str), ("type", ty, str),
                                  ("sharable", sharable, bool), ("read_only", read_only, bool),
                                  ("other_config", other_config, dict), ("location", location, str),
                                  ("xenstore_data", xenstore_data, dict), ("sm_config", sm_config, dict),
                                  ("managed", managed, bool), ("virtual_size", virtual_size, str),
                                  ("physical_utilisation", physical_utilisation, str),
                                  ("is_a_snapshot", is_a_snapshot, bool), ("snapshot_of", snapshot_of, str),
                                  ("snapshot_time", snapshot_time, xmlrpc.client.DateTime),
                                  ("cbt_enabled", cbt_enabled, bool)):
            _check(value, kind, name)
        self._sr(sr)
        if any(r["uuid"] == uuid for r in self.vdis.values()):
            raise XapiFailure("INTERNAL_ERROR", f"Db_exn.Uniqueness_constraint_violation VDI uuid {uuid}")
        if ty not in ("system", "user", "ephemeral", "suspend", "crashdump", "ha_statefile", "metadata",
                      "redo_log", "rrd", "pvs_cache", "cbt_metadata"):
            raise XapiFailure("ENUM_INVALID", "vdi_type", ty)
        if snapshot_of != NULL:
            self._vdi(snapshot_of)
        int(virtual_size), int(physical_utilisation)
        ref = f"OpaqueRef:{secrets.token_hex(8)}"
        self.vdis[ref] = {
            "uuid": uuid, "name_label": name_label, "name_description": name_description, "SR": sr,
            "type": ty, "sharable": sharable, "read_only": read_only, "other_config": dict(other_config),
            "location": location, "xenstore_data": dict(xenstore_data), "sm_config": dict(sm_config),
            "managed": managed, "virtual_size": virtual_size, "physical_utilisation": physical_utilisation,
            "metadata_of_pool": metadata_of_pool, "is_a_snapshot": is_a_snapshot,
            "snapshot_time": snapshot_time, "snapshot_of": snapshot_of, "cbt_enabled": cbt_enabled,
        }
        return ref

    def _VDI_db_forget(self, ref: str) -> str:
        self._vdi(ref)
        del self.vdis[ref]
        return ""

    def _set(self, ref: str, field: str, value: Any, kind: type) -> str:
        _check(value, kind, field)
        self._vdi(ref)[field] = value
        return ""

    def _VDI_set_virtual_size(self, ref: str, value: str) -> str:
        int(value)
        return self._set(ref, "virtual_size", value, str)

    def _VDI_set_physical_utilisation(self, ref: str, value: str) -> str:
        int(value)
        return self._set(ref, "physical_utilisation", value, str)

    def _VDI_set_read_only(self, ref: str, value: bool) -> str:
        return self._set(ref, "read_only", value, bool)

    def _VDI_set_sm_config(self, ref: str, value: Dict[str, str]) -> str:
        return self._set(ref, "sm_config", dict(value), dict)

    def _VDI_set_other_config(self, ref: str, value: Dict[str, str]) -> str:
        return self._set(ref, "other_config", dict(value), dict)

    def _VDI_set_name_label(self, ref: str, value: str) -> str:
        return self._set(ref, "name_label", value, str)
