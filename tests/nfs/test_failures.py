"""The server goes away: verbs fail with typed errors within a bounded time, and after a restart the SR gives full
service again with every byte that was acknowledged before (checksums). Uses a private server (it is stopped)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from smapi.interface.errors import Backend_error, SmapiError
from tests.nfs.conftest import WHY, Host, host_env
from tests.nfs.factory import device_config
from tests.nfs.ganesha import GaneshaServer

MiB = 1 << 20
TIMEOUT = 2  # seconds an NFS request may take (device_config timeo)
BOUND = 6 * TIMEOUT + 10  # the longest a verb may hang on a dead server (a few requests, each up to TIMEOUT)


@pytest.fixture(params=["3", "4"], ids=["v3", "v4"])
def private(request: pytest.FixtureRequest) -> Iterator[GaneshaServer]:
    if WHY:
        pytest.skip(WHY)
    server = GaneshaServer(request.param).start()
    yield server
    server.destroy()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_server_stopped_mid_operation_then_restarted(private: GaneshaServer, tmp_path: Path,
                                                     no_leftovers: str) -> None:
    os.makedirs(os.path.join(private.export_dir, "srs"))
    dc: Dict[str, str] = {**device_config(private, f"{private.serverpath}/srs",
                                          "3" if private.version == "3" else "4.1"), "timeo": str(TIMEOUT)}
    # sanlock's default lease timing: at the tests' short io_timeout (1 s) the outage below would outlast the
    # host's lease, and its daemon would rightly kill this process for holding VDI leases (docs/pool.md)
    host = Host(tmp_path / "run", host_env(private, SMAPI_SANLOCK_IO_TIMEOUT="10"))
    sr = str(uuid.uuid4())
    try:
        host.call("SR.create", sr=sr, device_config=dc, physical_size=0)
        host.call("SR.attach", sr=sr, device_config=dc)
        kept: Dict[str, str] = {}
        for _ in range(3):
            vdi = host.call("VDI.create", sr=sr, vdi_info={"virtual_size": 4 * MiB})["vdi"]
            data = os.urandom(4 * MiB)
            host.write(sr, vdi, 0, data)
            kept[vdi] = _sha(data)
        victim = host.call("VDI.create", sr=sr, vdi_info={"virtual_size": 64 * MiB})["vdi"]

        # A long write is under way when the server stops (killed: no goodbye to the client).
        errors: List[BaseException] = []

        def long_write() -> None:
            try:
                for off in range(0, 64 * MiB, 2 * MiB):
                    host.write(sr, victim, off, os.urandom(2 * MiB))
            except BaseException as e:  # noqa: BLE001 - recorded for the assertions below
                errors.append(e)

        writer = threading.Thread(target=long_write)
        writer.start()
        time.sleep(0.3)
        private.stop_server(kill=True)
        writer.join(BOUND)
        assert not writer.is_alive(), "a write to a dead server hung past the bound"
        # The interrupted write failed (quickly, see the join above): with the typed error when the handle was
        # being opened, with the OSError of the data path (open_vdi handles are not verbs) when mid-write.
        assert errors and all(isinstance(e, (Backend_error, OSError)) for e in errors), errors

        started = time.monotonic()
        for verb, args in (("SR.scan", {}), ("VDI.create", {"vdi_info": {"virtual_size": MiB}}),
                           ("SR.stat", {})):
            with pytest.raises(SmapiError) as err:
                host.call(verb, sr=sr, **args)
            assert isinstance(err.value, Backend_error), err.value
        assert time.monotonic() - started < 3 * BOUND

        private.restart()
        # Full service again: reads of everything acknowledged before, new changes, a scan that sees all.
        deadline = time.monotonic() + BOUND
        while True:
            try:
                scan = {v["vdi"] for v in host.call("SR.scan", sr=sr)}
                break
            except Backend_error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert set(kept) | {victim} <= scan
        for vdi, digest in kept.items():
            assert _sha(host.read(sr, vdi, 0, 4 * MiB)) == digest
        new = host.call("VDI.create", sr=sr, vdi_info={"virtual_size": MiB})["vdi"]
        host.write(sr, new, 0, b"after the restart")
        assert host.read(sr, new, 0, 17) == b"after the restart"
        host.call("SR.detach", sr=sr)
    finally:
        host.cleanup()
