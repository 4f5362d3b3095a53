"""Fixtures of the transfer tests: an attached file SR in tmp_path, the Transfer service, and real HTTP clients.

Every exposure a test makes is unexposed at teardown (servers stopped, state removed), whatever the test did.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import xml.dom.minidom
from dataclasses import dataclass
from typing import Dict, Iterator, List

import pytest

from tests.sr.drivers import file_sr_factory
from tests.sr.helpers import FileSR

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_record(text: str) -> Dict[str, str]:
    root = xml.dom.minidom.parseString(text).documentElement
    assert root.tagName == "transfer_record"
    return {k: v for k, v in root.attributes.items()}


@dataclass
class Exposed:
    handle: str
    record: Dict[str, str]

    @property
    def url(self) -> str:
        r = self.record
        scheme = "https" if r["use_ssl"] == "true" else "http"
        return f"{scheme}://{r['ip']}:{r['port']}{r['url_path']}"

    @property
    def user(self) -> str:
        return f"{self.record['username']}:{self.record['password']}"


class Service:
    """The Transfer service in this process, remembering what to unexpose."""

    def __init__(self) -> None:
        from smapi.transfer.service import TransferService

        self.impl = TransferService()
        self.handles: List[str] = []

    def expose(self, vdi: str, mode: str = "http", **args: str) -> Exposed:
        args.setdefault("network_port", "0")
        handle = self.impl.expose(mode, vdi, "management", **args)
        self.handles.append(handle)
        return Exposed(handle, parse_record(self.impl.get_record(record_handle=handle)))

    def unexpose(self, handle: str) -> None:
        self.impl.unexpose(handle)
        self.handles.remove(handle)

    def close(self) -> None:
        from smapi.transfer.service import remove_exposure
        from smapi.transfer.state import all_exposures

        for e in all_exposures():
            remove_exposure(e)


@pytest.fixture
def env(tmp_path, monkeypatch):
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    yield sut
    sut.cleanup()


@pytest.fixture
def fsr(env) -> FileSR:
    sr = FileSR(env.device_config["path"])
    sr.create_sr()
    sr.attach()
    return sr


@pytest.fixture
def service(fsr) -> Iterator[Service]:
    s = Service()
    yield s
    s.close()
    from smapi.transfer.state import all_handles

    assert all_handles() == [], "an exposure outlived the test"


def curl(*args: str, data: bytes = b"", check: bool = False) -> subprocess.CompletedProcess:
    """curl with the response body on stdout and `%{http_code}` as the last line of stderr."""
    cmd = ["curl", "-sS", "--max-time", "60", "-w", "%{stderr}%{http_code}", *args]
    r = subprocess.run(cmd, input=data or None, capture_output=True, timeout=90)
    if check:
        assert status_of(r) in (200, 206), (r.stderr, r.stdout[:200])
    return r


def status_of(r: subprocess.CompletedProcess) -> int:
    tail = r.stderr.decode(errors="replace").strip().splitlines()
    return int(tail[-1][-3:]) if tail and tail[-1][-3:].isdigit() else 0


def patterned(seed: int, n: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


@pytest.fixture
def work(tmp_path) -> str:
    path = os.fspath(tmp_path / "work")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture
def host(fsr) -> Iterator[str]:
    """The toolstack endpoints (/import_raw_vdi, /export_raw_vdi) in this process, Digest root:s3cret."""
    from smapi.transfer.auth import Authenticator, Credentials
    from smapi.transfer.handlers import HostSite, TransferHandler, serve_open_disk_factory
    from smapi.transfer.httpserve import TransferServer
    from smapi.transfer.locate import find_vdi, open_data

    site = HostSite(Authenticator(Credentials("root", "s3cret"), allow_basic=False),
                    serve_open_disk_factory(lambda v, w: open_data(find_vdi(v), w)))
    server = TransferServer(("127.0.0.1", 0), TransferHandler, site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
