"""A VDI a VM is using (a datapath activated it: its NBD server runs) is not exposed for writing.

The service refuses up front when the run state shows a datapath; the exposure server's own `open_vdi` refuses
too (the engine's VDIInUse), which covers a datapath activated between the service's look and the open. The
second check is tested by hiding the first one.
"""

from __future__ import annotations

import shutil

import pytest

from smapi.interface.errors import VDIInUse
from smapi.transfer.state import all_handles
from tests.transfer.conftest import MiB, curl, status_of

pytestmark = pytest.mark.skipif(shutil.which("nbdkit") is None, reason="needs nbdkit (ci/apt-packages.txt)")


@pytest.fixture
def active_vdi(fsr):
    vdi = fsr.create(4 * MiB)
    fsr.v("VDI.attach", dp="vm1", vdi=vdi, read_write=True)
    fsr.v("VDI.activate", dp="vm1", vdi=vdi)
    try:
        yield vdi
    finally:
        fsr.reload()
        fsr.v("SR.detach")


def test_expose_of_an_activated_vdi_is_vdi_in_use(fsr, service, active_vdi):
    with pytest.raises(VDIInUse):
        service.impl.expose("http", active_vdi, "management", network_port="0")
    assert all_handles() == []


def test_the_exposure_servers_open_refuses_a_writer_even_when_the_service_did_not_see_the_datapath(
        fsr, service, active_vdi, monkeypatch):
    import smapi.transfer.service as svc

    monkeypatch.setattr(svc, "in_use", lambda located: None)  # the window between the service's look and the open
    for mode in ("http", "bits"):
        with pytest.raises(VDIInUse):
            service.impl.expose(mode, active_vdi, "management", network_port="0", read_only="false")
    assert all_handles() == [], "a refused exposure left its state behind"
    # Reading a VDI in use stays possible when asked for explicitly.
    ex = service.expose(active_vdi, read_only="true")
    assert status_of(curl("--digest", "-u", ex.user, "-r", "0-9", ex.url)) == 206
    service.unexpose(ex.handle)


def test_import_into_an_activated_vdi_is_409(fsr, host, active_vdi, work):
    import os

    from tests.transfer.conftest import patterned, sha

    before = sha(fsr.read_all(active_vdi))
    path = os.path.join(work, "disk.raw")
    with open(path, "wb") as f:
        f.write(patterned(3, MiB))
    r = curl("--digest", "-u", "root:s3cret", "-T", path, f"{host}/import_raw_vdi?vdi={active_vdi}")
    assert status_of(r) == 409, r.stdout
    assert sha(fsr.read_all(active_vdi)) == before


def test_a_vm_cannot_start_on_a_vdi_an_exposure_holds_for_writing(fsr, service, work):
    """VDI.activate probes the host's writer lock that a writable exposure holds: the VM's start is refused
    (VDIInUse) instead of two writers sharing the disk; the exposure's upload lands as usual, and the VM starts
    once the exposure is gone."""
    import os

    from smapi.interface.errors import Backend_error
    from tests.transfer.bitsclient import BitsClient
    from tests.transfer.conftest import patterned, sha

    vdi = fsr.create(4 * MiB)
    fsr.write(vdi, 0, patterned(7, 4 * MiB))
    upload = patterned(8, 2 * MiB)
    ex = service.expose(vdi, mode="bits")
    r = ex.record
    client = BitsClient(r["ip"], int(r["port"]), r["url_path"], r["username"], r["password"])
    try:
        client.request("Ping")
        client.create_session()
        assert client.fragment(upload, 0, 2 * MiB)[0] == 200
        fsr.v("VDI.attach", dp="vm1", vdi=vdi, read_write=True)
        with pytest.raises(Backend_error) as caught:
            fsr.v("VDI.activate", dp="vm1", vdi=vdi)
        assert caught.value.params[0] == "SR_BACKEND_FAILURE_24" and "open for writing" in str(caught.value)
        status, h, _ = client.request("Close-Session", headers={"BITS-Session-Id": client.session or ""},
                                      auth=False)
        assert status == 200, (status, h)
    finally:
        client.close()
    service.unexpose(ex.handle)
    fsr.v("VDI.activate", dp="vm1", vdi=vdi)
    fsr.v("VDI.deactivate", dp="vm1", vdi=vdi)
    fsr.v("VDI.detach", dp="vm1", vdi=vdi)
    data = fsr.read_all(vdi)
    assert sha(data[:2 * MiB]) == sha(upload)
    assert not [n for n in os.listdir(fsr.path) if n.startswith("upload-")]
