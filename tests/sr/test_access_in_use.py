"""A writable data handle (`open_vdi(writable=True)`) is refused while a datapath of this host has the VDI
activated: the NBD server serving a VM's disk does not take the VDI lock, so a second writer would corrupt it.
Real nbdkit servers (started by VDI.activate) and a real NBD client (qemu-io) are used."""

from __future__ import annotations

import shutil
import subprocess
from typing import Iterator

import pytest

from smapi.interface.errors import Backend_error
from tests.sr.drivers import file_sr_factory
from tests.sr.helpers import FileSR, MiB

pytestmark = pytest.mark.skipif(shutil.which("nbdkit") is None or shutil.which("qemu-io") is None,
                                reason="needs nbdkit and qemu-io (ci/apt-packages.txt)")


@pytest.fixture
def fsr(tmp_path, monkeypatch) -> Iterator[FileSR]:
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    sr = FileSR(sut.device_config["path"])
    sr.create_sr()
    sr.attach()
    try:
        yield sr
    finally:
        sr.reload()
        sr.v("SR.detach")  # stops every server a failing test left running
        sut.cleanup()


def _classic_name(err: Backend_error) -> str:
    return str(err.params[1][1])


def test_writable_handle_is_refused_while_a_datapath_has_the_vdi_activated(fsr: FileSR) -> None:
    vdi = fsr.create(4 * MiB)
    fsr.write(vdi, 0, b"before" * 100)
    info = fsr.v("VDI.attach", dp="vm1", vdi=vdi, read_write=True)
    # Attached but not activated: no server holds the image yet, a writer is still fine.
    fsr.write(vdi, 4096, b"attached")
    fsr.v("VDI.activate", dp="vm1", vdi=vdi)
    subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 1048576 65536", info["xenstore_data"]["nbd-uri"]],
                   check=True, capture_output=True, timeout=60)

    with pytest.raises(Backend_error) as caught:
        fsr.driver.open_vdi(fsr.sr, vdi, writable=True)
    assert caught.value.params[0] == "SR_BACKEND_FAILURE_24", caught.value.params  # classic VDIInUse
    assert "activated" in _classic_name(caught.value)
    # The refused open took nothing: no lock is left held, readers still work (and see the VM's flushed writes).
    with fsr.driver.open_vdi(fsr.sr, vdi) as h:
        assert h.read(0, 6) == b"before"

    fsr.v("VDI.deactivate", dp="vm1", vdi=vdi)
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:  # the server stopped: writers may come back
        assert h.read(MiB, 4) == b"\x5a" * 4
        h.write(0, b"after!")
        h.flush()
    fsr.v("VDI.detach", dp="vm1", vdi=vdi)
    assert fsr.read_all(vdi)[:6] == b"after!"


def test_a_read_only_datapath_also_excludes_writers(fsr: FileSR) -> None:
    vdi = fsr.create(4 * MiB)
    fsr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)
    fsr.v("VDI.activate", dp="reader", vdi=vdi)
    with pytest.raises(Backend_error) as caught:
        fsr.driver.open_vdi(fsr.sr, vdi, writable=True)
    assert caught.value.params[0] == "SR_BACKEND_FAILURE_24"
    fsr.v("VDI.deactivate", dp="reader", vdi=vdi)
    fsr.v("VDI.detach", dp="reader", vdi=vdi)
    fsr.write(vdi, 0, b"ok")


def test_activate_is_refused_while_a_writable_handle_is_open(fsr: FileSR) -> None:
    """The other order: a VM must not start on a disk an import or a transfer exposure holds open for writing."""
    vdi = fsr.create(4 * MiB)
    info = fsr.v("VDI.attach", dp="vm1", vdi=vdi, read_write=True)  # attach starts nothing: allowed
    fsr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)
    with fsr.driver.open_vdi(fsr.sr, vdi, writable=True) as h:
        for dp in ("vm1", "reader"):
            with pytest.raises(Backend_error) as caught:
                fsr.v("VDI.activate", dp=dp, vdi=vdi)
            assert caught.value.params[0] == "SR_BACKEND_FAILURE_24", caught.value.params  # classic VDIInUse
            assert "open for writing" in _classic_name(caught.value)
        h.write(0, b"import")
        h.flush()
    with fsr.driver.open_vdi(fsr.sr, vdi):  # a read-only handle does not stand in the way
        fsr.v("VDI.activate", dp="vm1", vdi=vdi)
    r = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0x69 0 1", info["xenstore_data"]["nbd-uri"]],
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and b"Pattern verification failed" not in r.stdout, r.stdout  # 'i' of "import"
    fsr.v("VDI.deactivate", dp="vm1", vdi=vdi)
    fsr.v("VDI.detach", dp="vm1", vdi=vdi)
    fsr.v("VDI.detach", dp="reader", vdi=vdi)


def test_a_writer_in_another_process_blocks_activate_until_it_dies(fsr: FileSR) -> None:
    """The exclusion is a flock: it spans processes, and a killed writer leaves nothing to clean up."""
    import os
    import signal
    import sys
    import textwrap

    vdi = fsr.create(4 * MiB)
    code = textwrap.dedent(f"""
        import sys, time
        from smapi.core.driver import load_driver
        driver = load_driver("smapi.drivers.file:FileDriver")
        h = driver.open_vdi({fsr.sr!r}, {vdi!r}, writable=True)
        print("open", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=dict(os.environ))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"open"
        fsr.v("VDI.attach", dp="vm1", vdi=vdi, read_write=True)
        with pytest.raises(Backend_error) as caught:
            fsr.v("VDI.activate", dp="vm1", vdi=vdi)
        assert "open for writing" in _classic_name(caught.value)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        fsr.v("VDI.activate", dp="vm1", vdi=vdi)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    fsr.v("VDI.deactivate", dp="vm1", vdi=vdi)
    fsr.v("VDI.detach", dp="vm1", vdi=vdi)
