"""The VDI activation lease: a datapath server on host A holds `act-<vdi>`, so host B can neither activate the VDI
nor change its chain (Activated_on_another_host, naming A), B's collector leaves it alone, and every write A
acknowledged reads back."""

from __future__ import annotations

import glob
import os
import subprocess
import time
from typing import Any, Dict, List

import pytest

from tests.pool.hostproc import RemoteError
from tests.pool.nfspool import NfsHost, new_sr, nfs_env

MiB = 1 << 20


def _hosts(make_hosts, server, n: int) -> List[NfsHost]:  # type: ignore[no-untyped-def]
    return [NfsHost(h) for h in make_hosts(n, **nfs_env(server))]


def _qemu_io(uri: str, *commands: str) -> None:
    args = ["qemu-io", "-f", "raw"]
    for c in commands:
        args += ["-c", c]
    res = subprocess.run(args + [uri], capture_output=True, timeout=60)
    assert res.returncode == 0 and b"fail" not in res.stdout.lower(), (res.stdout[-600:], res.stderr[-600:])


def _refused_as_active_on(host_id: int, call: Any) -> None:
    with pytest.raises(RemoteError) as refused:
        call()
    assert refused.value.wire == "Activated_on_another_host", refused.value
    assert f"host id {host_id}" in str(refused.value)


def _activate(host: NfsHost, sr: str, vdi: str, dp: str, rw: bool) -> Dict[str, Any]:
    info = host.call("VDI.attach", sr=sr, dp=dp, vdi=vdi, read_write=rw)
    host.call("VDI.activate", sr=sr, dp=dp, vdi=vdi)
    return info  # type: ignore[no-any-return]


def _release(host: NfsHost, sr: str, vdi: str, dp: str) -> None:
    host.call("VDI.deactivate", sr=sr, dp=dp, vdi=vdi)
    host.call("VDI.detach", sr=sr, dp=dp, vdi=vdi)


def _volumes(server, sr: str) -> List[str]:  # type: ignore[no-untyped-def]
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(server.export_dir, "pool-*", sr, "*.vhd")))


def test_a_vdi_active_on_one_host_is_refused_and_left_alone_on_the_other(make_hosts, nfs_server) -> None:
    a, b = _hosts(make_hosts, nfs_server, 2)
    sr, dc = new_sr(nfs_server)
    a.call("SR.create", sr=sr, device_config=dc, physical_size=0)
    a.call("SR.attach", sr=sr, device_config=dc)
    b.call("SR.attach", sr=sr, device_config=dc)
    vdi = a.call("VDI.create", sr=sr, vdi_info={"virtual_size": 4 * MiB, "name_label": "disk"})["vdi"]
    # a snapshot whose removal later leaves `vdi` a leaf-coalesce candidate (single child of a hidden base)
    snap = a.call("VDI.snapshot", sr=sr, vdi_info=a.call("VDI.stat", sr=sr, vdi=vdi))["vdi"]

    uri = _activate(a, sr, vdi, "vm-a", rw=True)["xenstore_data"]["nbd-uri"]
    _qemu_io(uri, "write -P 0x11 0 65536", "flush")

    # activation on the second host: refused, read-write and read-only alike (A holds it exclusively)
    for rw in (True, False):
        b.call("VDI.attach", sr=sr, dp="vm-b", vdi=vdi, read_write=rw)
        _refused_as_active_on(1, lambda: b.call("VDI.activate", sr=sr, dp="vm-b", vdi=vdi))
        b.call("VDI.detach", sr=sr, dp="vm-b", vdi=vdi)

    # chain-changing verbs on B: refused, naming A
    info = b.call("VDI.stat", sr=sr, vdi=vdi)
    _refused_as_active_on(1, lambda: b.call("VDI.snapshot", sr=sr, vdi_info=info))
    _refused_as_active_on(1, lambda: b.call("VDI.clone", sr=sr, vdi_info=info))
    _refused_as_active_on(1, lambda: b.call("VDI.resize", sr=sr, vdi=vdi, new_size=8 * MiB))
    _refused_as_active_on(1, lambda: b.call("VDI.destroy", sr=sr, vdi=vdi))

    # B removes the snapshot (its synchronous collection would leaf-coalesce `vdi`) while A keeps writing
    before = _volumes(nfs_server, sr)
    _qemu_io(uri, "write -P 0x22 1048576 65536")
    b.call("VDI.destroy", sr=sr, vdi=snap)
    _qemu_io(uri, "write -P 0x33 2097152 65536", "flush")
    assert len(_volumes(nfs_server, sr)) == len(before) - 1, "the leaf-coalesce of the active VDI was not skipped"
    _qemu_io(uri, "read -P 0x11 0 65536", "read -P 0x22 1048576 65536", "read -P 0x33 2097152 65536")

    _release(a, sr, vdi, "vm-a")
    # every acknowledged write reads back on B, and B may now change the VDI and activate it
    assert b.read(sr, vdi, 0, 4) == "\x11" * 4
    assert b.read(sr, vdi, MiB, 4) == "\x22" * 4 and b.read(sr, vdi, 2 * MiB, 4) == "\x33" * 4
    b.call("VDI.resize", sr=sr, vdi=vdi, new_size=8 * MiB)
    _activate(b, sr, vdi, "vm-b", rw=True)
    _refused_as_active_on(2, lambda: a.call("VDI.snapshot", sr=sr, vdi_info=a.call("VDI.stat", sr=sr, vdi=vdi)))
    _release(b, sr, vdi, "vm-b")

    # read-only activations share the lease across hosts
    _activate(a, sr, vdi, "ro-a", rw=False)
    _activate(b, sr, vdi, "ro-b", rw=False)
    _release(a, sr, vdi, "ro-a")
    _release(b, sr, vdi, "ro-b")

    # the server itself holds the lease: when its host leaves the lockspace, its daemon kills the server
    _activate(a, sr, vdi, "vm-a", rw=True)
    # a snapshot on the host that serves it restarts the server over the new leaf, which takes the lease again
    a.call("VDI.snapshot", sr=sr, vdi_info=a.call("VDI.stat", sr=sr, vdi=vdi))
    b.call("VDI.attach", sr=sr, dp="vm-b", vdi=vdi, read_write=True)
    _refused_as_active_on(1, lambda: b.call("VDI.activate", sr=sr, dp="vm-b", vdi=vdi))
    b.call("VDI.detach", sr=sr, dp="vm-b", vdi=vdi)
    server = _nbdkit_serving(vdi)
    assert len(server) == 1, server
    a.main.run("from smapi.sr.sanlock import client\n"
               "client.rem_lockspace('smapi-' + sr, 1, client.Area(lockspace_file))",
               sr=sr, lockspace_file=_lockspace_file(server[0]))
    deadline = time.monotonic() + 30
    while _nbdkit_serving(vdi) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _nbdkit_serving(vdi), "the daemon did not kill the server holding the activation lease"
    b.call("SR.detach", sr=sr)
    a.call("SR.detach", sr=sr)


def _nbdkit_serving(vdi: str) -> List[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"nbdkit") and f"export={vdi}".encode() in argv:
                found.append(int(entry))
    return found


def _lockspace_file(pid: int) -> str:
    """The SR's lockspace as the server's host sees it: beside the image the server opened (its own mount)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        image = next(a for a in f.read().split(b"\0") if a.startswith(b"image=")).decode()[len("image="):]
    return os.path.join(os.path.dirname(image), ".sanlock", "lockspace")
