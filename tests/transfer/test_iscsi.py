"""iSCSI mode with real initiators: libiscsi's iscsi-ls, iscsi-inq, iscsi-readcapacity16 and qemu-img/qemu-io
with `iscsi://`, one-way CHAP with the record's credentials; wrong credentials refused; data round trips."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from smapi.transfer import processes
from smapi.transfer.state import Exposure, all_handles
from tests.transfer.conftest import MiB, patterned, sha

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("tgtd", "tgtadm", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16",
                                      "qemu-img", "fusermount3")),
    reason="needs tgt, libiscsi-bin, qemu-utils + qemu-block-extra and fuse3 (ci/apt-packages.txt)")

SIZE = 16 * MiB
INITIATOR = "iqn.2026-01.org.smapi.test:initiator"


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


def _urls(rec):
    portal = f"{rec['ip']}:{rec['port']}"
    chap = f"{rec['username']}%{rec['password']}@"
    return f"iscsi://{chap}{portal}", f"iscsi://{chap}{portal}/{rec['iscsi_iqn']}/{rec['iscsi_lun']}"


def test_iscsi_exposure_with_chap(fsr, service, work):
    vdi = fsr.create(SIZE)
    content = patterned(50, SIZE)
    fsr.write(vdi, 0, content)
    ex = service.expose(vdi, "iscsi")
    rec = ex.record
    assert set(rec) == {"record_handle", "vdi_uuid", "status", "transfer_mode", "ip", "port", "use_ssl",
                        "username", "password", "iscsi_iqn", "iscsi_lun", "iscsi_sn"}
    assert rec["iscsi_sn"] == vdi and rec["iscsi_lun"] == "1" and vdi in rec["iscsi_iqn"]
    portal, lun = _urls(rec)

    r = _run("iscsi-ls", "-i", INITIATOR, "-s", portal)
    assert r.returncode == 0 and rec["iscsi_iqn"] in r.stdout and "Lun:1" in r.stdout, r.stdout + r.stderr
    r = _run("iscsi-inq", "-i", INITIATOR, lun)
    assert r.returncode == 0 and "VIRTUAL-DISK" in r.stdout
    r = _run("iscsi-inq", "-i", INITIATOR, "-e", "1", "-c", "128", lun)  # unit serial number VPD page
    assert r.returncode == 0 and vdi in r.stdout, r.stdout + r.stderr
    r = _run("iscsi-readcapacity16", "-i", INITIATOR, lun)
    assert r.returncode == 0 and f"Total size:{SIZE}" in r.stdout
    # Wrong or missing CHAP credentials are refused.
    bad = lun.replace(rec["password"], "0123456789abcdef")
    r = _run("iscsi-inq", "-i", INITIATOR, bad)
    assert r.returncode != 0 and "Authentication failure" in r.stdout + r.stderr
    r = _run("iscsi-inq", "-i", INITIATOR, lun.replace(f"{rec['username']}%{rec['password']}@", ""))
    assert r.returncode != 0

    # qemu reads the LUN, then writes a new disk through it.
    got = os.path.join(work, "got.raw")
    assert _run("qemu-img", "convert", "-f", "raw", "-O", "raw", lun, got).returncode == 0
    with open(got, "rb") as f:
        assert sha(f.read()) == sha(content)
    new = patterned(51, SIZE)
    src = os.path.join(work, "new.raw")
    with open(src, "wb") as f:
        f.write(new)
    r = _run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, lun)
    assert r.returncode == 0, r.stderr
    assert _run("qemu-img", "compare", "-f", "raw", "-F", "raw", src, lun).returncode == 0
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(new)
    _assert_no_leftovers(ex)


def test_iscsi_read_only_and_killed_server_cleanup(fsr, service):
    vdi = fsr.create(SIZE)
    ex = service.expose(vdi, "iscsi", read_only="true")
    _portal, lun = _urls(ex.record)
    r = _run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 64k", lun)
    assert r.returncode != 0 and "write protected" in r.stdout + r.stderr, r.stdout + r.stderr
    r = _run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0 0 64k", lun)
    assert r.returncode == 0 and "read 65536/65536" in r.stdout, r.stdout + r.stderr
    # The exposure server dies without tearing down: cleanup stops its tgtd and unmounts its file.
    e = Exposure.load(ex.handle)
    os.kill(e.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes.alive(e.pid, e.handle) and time.monotonic() < deadline:
        time.sleep(0.05)
    service.impl.cleanup()
    assert all_handles() == []
    _assert_no_leftovers(ex)
    assert fsr.read_all(vdi) == bytes(SIZE)


def _assert_no_leftovers(ex) -> None:
    # Only this exposure's mount and tgtd (by handle and portal): tests running beside this one (the other xdist
    # worker, the iSCSI SR driver's tests) have their own.
    with open("/proc/mounts") as f:
        assert ex.handle not in f.read()
    r = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True)
    port = ex.record["port"]
    tgtds = [line for line in r.stdout.splitlines()
             if " tgtd -f -C " in line and f"portal=127.0.0.1:{port}" in line and " Z" not in line]
    assert not tgtds, tgtds
