"""Snapshot trees: number_of_ip_addresses_needed, expose_forest, SnapshotTreeTooLong, get_import_instructions."""

from __future__ import annotations

import io
import re
import tarfile
import xmlrpc.client

import pytest

from smapi.interface.errors import SnapshotTreeTooLong, VDINotFound
from tests.transfer.conftest import MiB, curl, parse_record, status_of


def test_trees_and_forest(fsr, service):
    a = fsr.create(4 * MiB)
    snaps = [fsr.snapshot(a) for _ in range(2)]
    b = fsr.create(4 * MiB)
    impl = service.impl
    assert impl.number_of_ip_addresses_needed(a) == "1"
    assert impl.number_of_ip_addresses_needed(f"{a},{snaps[0]},{b}") == "2"
    with pytest.raises(VDINotFound):
        impl.number_of_ip_addresses_needed("00000000-0000-0000-0000-000000000000")
    handles = impl.expose_forest(f"{snaps[1]},{b}", "management").split(",")
    service.handles.extend(handles)
    records = [parse_record(impl.get_record(record_handle=h)) for h in handles]
    assert sorted(r["vdi_uuid"] for r in records) == sorted([a, *snaps, b])
    assert {r["transfer_mode"] for r in records} == {"bits"}
    r = records[0]
    got = curl("--digest", "-u", f"{r['username']}:{r['password']}", "-r", "0-9",
               f"http://{r['ip']}:{r['port']}{r['url_path']}")
    assert status_of(got) == 206
    for h in handles:
        service.unexpose(h)


def test_snapshot_tree_too_long(fsr, service):
    vdi = fsr.create(2 * MiB)
    for _ in range(15):
        fsr.snapshot(vdi)
    with pytest.raises(SnapshotTreeTooLong):
        service.impl.number_of_ip_addresses_needed(vdi)
    with pytest.raises(SnapshotTreeTooLong):
        service.impl.expose("http", vdi, "management", network_port="0")


def _ova_tar() -> bytes:
    def vdi(ref: str, loc: str, parent: str, snap: bool) -> dict:
        rec = {"location": loc, "virtual_size": "1000", "is_a_snapshot": snap,
               "sm_config": {"vhd-parent": parent} if parent else {}}
        return {"class": "VDI", "id": ref, "snapshot": rec}

    ova = {"version": {"export_vsn": "2"},
           "objects": [{"class": "VM", "id": "Ref:0", "snapshot": {}},
                       vdi("Ref:1", "base", "", False), vdi("Ref:2", "s1", "base", True),
                       vdi("Ref:3", "leaf", "base", False)]}
    text = xmlrpc.client.dumps((ova,))
    body = re.search(r"<param>\s*(.*)\s*</param>", text, re.S).group(1)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("ova.xml")
        info.size = len(body.encode())
        tar.addfile(info, io.BytesIO(body.encode()))
    return out.getvalue()


def test_import_instructions(fsr, service):
    vdi = fsr.create(2 * MiB)
    fsr.write(vdi, 0, _ova_tar())
    assert service.impl.get_import_instructions(vdi).splitlines() == [
        "create base 1024", "pass", "clone leaf base", "leaf leaf", "reuse s1 base", "snap s1"]
