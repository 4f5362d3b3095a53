"""Keeping xapi's database right from a classic (SMAPIv1) call, as sm's drivers do.

xapi leaves the VDI records of an SMAPIv1 SR to the driver ("the current backends stash data directly in the db",
xen-api `storage_smapiv1.ml`): after `vdi_create` it looks the new VDI up by uuid, after snapshot and clone by
location, after `sr_scan` it reads the SR's records. sm's drivers write those records through XenAPI with the
caller's `session_ref`: `VDI.db_introduce` for a new VDI, `VDI.db_forget` for a deleted one, setters for the
fields the storage owns (virtual_size, physical_utilisation, read_only, sm_config). `other_config`, the name
and the description belong to xapi and its users once a record exists: they are set at introduction only.

`XapiDatabase.for_request` answers `None` when the call carries no session (`OpaqueRef:NULL`, or none, as for
`sr_get_driver_info` and every caller that is not xapi) or when no xapi listens on this host (its socket is
absent): nothing is written and the XenAPI client is not even imported (cold start).
"""

from __future__ import annotations

import os
import xmlrpc.client
from typing import Any, Callable, Dict, Iterable, List, Optional

from smapi.interface.errors import Backend_error

#: xapi's local socket; XenAPI.xapi_local() connects there. SMAPI_XAPI_SOCKET points elsewhere (tests).
DEFAULT_XAPI_SOCKET = "/var/lib/xcp/xapi"
NULL_REF = "OpaqueRef:NULL"
EPOCH = "19700101T00:00:00Z"


def unix_url(socket_path: str) -> str:
    """The URL XenAPI's UDSTransport understands: the host part is the socket path with '/' spelled '_'."""
    if "_" in socket_path:
        raise Backend_error.classic(
            "SMGeneral", f"xapi socket path {socket_path!r} contains '_', which XenAPI's unix transport cannot "
            "address (it maps every '_' of the host part to '/'); set SMAPI_XAPI_SOCKET to a path without '_'")
    return "http://" + socket_path.replace("/", "_") + "/"


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("OpaqueRef:") and value != NULL_REF


class XapiDatabase:
    """The VDI records of one SR in xapi's database, written through one XenAPI session."""

    def __init__(self, xenapi: Any, sr_uuid: str, sr_ref: Optional[str] = None):
        self.xenapi = xenapi
        self.sr_uuid = sr_uuid
        self._sr_ref = sr_ref if _is_ref(sr_ref) else None

    @classmethod
    def for_request(cls, request: Dict[str, Any]) -> Optional[XapiDatabase]:
        session_ref = request.get("session_ref")
        if not _is_ref(session_ref) or not request.get("sr_uuid"):
            return None
        socket_path = os.environ.get("SMAPI_XAPI_SOCKET", DEFAULT_XAPI_SOCKET)
        if not os.path.exists(socket_path):
            # No xapi on this host (a test harness, another toolstack): there is no database to keep.
            return None
        import XenAPI  # only a call from xapi pays for it

        session = XenAPI.Session(unix_url(socket_path), transport=XenAPI.UDSTransport())
        # sm's SRCommand does the same: the driver acts inside the caller's session, it never logs in.
        session._session = session_ref
        return cls(session.xenapi, request["sr_uuid"], request.get("sr_ref"))

    # -- calls ---------------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except (xmlrpc.client.Error, OSError) as e:
            raise Backend_error.classic("SMGeneral", f"xapi {what}: {e}") from None
        except Exception as e:  # XenAPI.Failure: xapi answered with an ErrorDescription
            details = getattr(e, "details", None)
            if details is None:
                raise
            raise Backend_error.classic("SMGeneral", f"xapi {what}: {details}") from None

    @property
    def sr_ref(self) -> str:
        if self._sr_ref is None:
            self._sr_ref = self._call("SR.get_by_uuid", self.xenapi.SR.get_by_uuid, self.sr_uuid)
        return self._sr_ref

    def records(self) -> Dict[str, Dict[str, Any]]:
        """The SR's VDI records in xapi, by location (the key the storage interface uses)."""
        found: Dict[str, Dict[str, Any]] = {}
        for ref in self._call("SR.get_VDIs", self.xenapi.SR.get_VDIs, self.sr_ref):
            record = self._call("VDI.get_record", self.xenapi.VDI.get_record, ref)
            found[record["location"]] = {**record, "ref": ref}
        return found

    def ref_of_uuid(self, uuid: str) -> Optional[str]:
        """The VDI's ref, or None when xapi has no such record."""
        try:
            return self.xenapi.VDI.get_by_uuid(uuid)
        except (xmlrpc.client.Error, OSError) as e:
            raise Backend_error.classic("SMGeneral", f"xapi VDI.get_by_uuid: {e}") from None
        except Exception as e:
            if getattr(e, "details", [None])[0] == "UUID_INVALID":
                return None
            raise

    def location_of_ref(self, ref: str) -> str:
        """The location (storage key) of the VDI xapi calls `ref`: vdi_compose's argument is an OpaqueRef."""
        return self._call("VDI.get_location", self.xenapi.VDI.get_location, ref)

    def managed_vdis(self) -> List[str]:
        """The uuids of the SR's managed VDIs: xapi's own sr_delete guard counts those."""
        return sorted(r["uuid"] for r in self.records().values() if r.get("managed", True))

    # -- writing ---------------------------------------------------------------------------------------------
    def introduce(self, info: Dict[str, Any]) -> str:
        """Create the record of the storage VDI `info` (a vdi_info), or bring an existing one up to date."""
        existing = self.ref_of_uuid(info["vdi"])
        if existing is not None:
            self.update(existing, info)
            return existing
        snapshot_of = info.get("snapshot_of") or ""
        snapshot_of_ref = (self.ref_of_uuid(snapshot_of) if snapshot_of and not _is_ref(snapshot_of)
                           else snapshot_of) or NULL_REF
        pool = info.get("metadata_of_pool") or ""
        return self._call(
            "VDI.db_introduce", self.xenapi.VDI.db_introduce,
            info["vdi"], info.get("name_label", ""), info.get("name_description", ""), self.sr_ref,
            info.get("ty") or "user", False, bool(info.get("read_only", False)), {}, info["vdi"], {},
            dict(info.get("sm_config") or {}), True, str(info["virtual_size"]),
            str(info.get("physical_utilisation", 0)), pool if _is_ref(pool) else NULL_REF,
            bool(info.get("is_a_snapshot", False)), xmlrpc.client.DateTime(info.get("snapshot_time") or EPOCH),
            snapshot_of_ref, False,
        )

    def update(self, ref: str, info: Dict[str, Any], record: Optional[Dict[str, Any]] = None) -> None:
        """Set the fields the storage owns where xapi's record differs (sm's `_db_update`)."""
        if record is None:
            record = self._call("VDI.get_record", self.xenapi.VDI.get_record, ref)
        vdi = self.xenapi.VDI
        if str(record.get("virtual_size")) != str(info["virtual_size"]):
            self._call("VDI.set_virtual_size", vdi.set_virtual_size, ref, str(info["virtual_size"]))
        utilisation = str(info.get("physical_utilisation", 0))
        if str(record.get("physical_utilisation")) != utilisation:
            self._call("VDI.set_physical_utilisation", vdi.set_physical_utilisation, ref, utilisation)
        if bool(record.get("read_only")) != bool(info.get("read_only", False)):
            self._call("VDI.set_read_only", vdi.set_read_only, ref, bool(info.get("read_only", False)))
        sm_config = dict(info.get("sm_config") or {})
        # host_* keys are xapi's own (attachment bookkeeping); every other key mirrors the storage.
        kept = {k: v for k, v in (record.get("sm_config") or {}).items() if k.startswith("host_")}
        if {**sm_config, **kept} != (record.get("sm_config") or {}):
            self._call("VDI.set_sm_config", vdi.set_sm_config, ref, {**sm_config, **kept})

    def forget(self, location: str) -> None:
        """Drop the record of a deleted VDI; a record already gone is fine (xapi may have raced us)."""
        ref = self.ref_of_uuid(location)
        if ref is not None:
            self._call("VDI.db_forget", self.xenapi.VDI.db_forget, ref)

    def synchronise(self, infos: Iterable[Dict[str, Any]]) -> None:
        """Make the SR's records equal the storage's VDIs (sm's scan: introduce, forget, update)."""
        on_storage = {info["vdi"]: info for info in infos}
        in_xapi = self.records()
        for location, record in in_xapi.items():
            if location not in on_storage and record.get("managed", True):
                self._call("VDI.db_forget", self.xenapi.VDI.db_forget, record["ref"])
        for location, info in on_storage.items():
            if location in in_xapi:
                self.update(in_xapi[location]["ref"], info, in_xapi[location])
            else:
                self.introduce(info)
