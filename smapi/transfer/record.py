"""The XML `transfer_record` that get_record returns (a string: XenAPI cannot unmarshal a plugin's dict).

Exactly the attributes the API lists: `vdi_uuid` + `status` ("unused" / "inuse") for a VDI that is not exposed;
for an exposed one also record_handle, transfer_mode, ip, port, use_ssl, username, password; url_path and
url_full for http/bits; iscsi_iqn, iscsi_lun, iscsi_sn for iscsi; ssl_cert with use_ssl. The VHD view is
`url_full` + ".vhd" (the original code had no `url_full_vhd` key either; clients append ".vhd").
"""

from __future__ import annotations

from typing import Dict, List, Tuple
from xml.sax.saxutils import quoteattr

from smapi.transfer.state import Exposure


def _xml(attrs: List[Tuple[str, str]]) -> str:
    body = "".join(f"\n  {k}={quoteattr(v)}" for k, v in attrs)
    return f'<?xml version="1.0"?>\n<transfer_record{body}>\n</transfer_record>\n'


def unexposed_record(vdi_uuid: str, in_use: bool) -> str:
    return _xml([("vdi_uuid", vdi_uuid), ("status", "inuse" if in_use else "unused")])


def host_for_url(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def url_full(e: Exposure) -> str:
    scheme = "https" if e.use_ssl else "http"
    return f"{scheme}://{e.username}:{e.password}@{host_for_url(e.ip)}:{e.port}{e.url_path}"


def exposed_attributes(e: Exposure) -> Dict[str, str]:
    attrs = {
        "record_handle": e.handle,
        "vdi_uuid": e.vdi_uuid,
        "status": "exposed",
        "transfer_mode": e.transfer_mode,
        "ip": e.ip,
        "port": str(e.port),
        "use_ssl": "true" if e.use_ssl else "false",
        "username": e.username,
        "password": e.password,
    }
    if e.transfer_mode == "iscsi":
        attrs.update(iscsi_iqn=e.iscsi_iqn, iscsi_lun=e.iscsi_lun, iscsi_sn=e.iscsi_sn)
    else:
        attrs.update(url_path=e.url_path, url_full=url_full(e))
    if e.use_ssl:
        with open(e.cert_path) as f:
            attrs["ssl_cert"] = f.read()
    return attrs


def exposed_record(e: Exposure) -> str:
    return _xml(sorted(exposed_attributes(e).items()))
