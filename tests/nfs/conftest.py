"""Fixtures of the NFS driver tests: real ganesha servers (shared per session), hosts, and leak checks."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest

from smapi.core.driver import load_driver
from tests.nfs.factory import nfs_unavailable, session_sanlock_env, shared_server, stop_all_servers
from tests.nfs.ganesha import GaneshaServer

WHY = nfs_unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")


@pytest.fixture(scope="session", autouse=True)
def _servers_stop_at_the_end() -> Iterator[None]:
    yield
    stop_all_servers()


@pytest.fixture(params=["3", "4"], ids=["v3", "v4"])
def server(request: pytest.FixtureRequest) -> GaneshaServer:
    if WHY:
        pytest.skip(WHY)
    return shared_server(request.param)


class Host:
    """One host: its own run directory (so its own mounts, attach records and host id), same driver."""

    def __init__(self, run_dir: Path, env: Dict[str, str]) -> None:
        self.run_dir = str(run_dir)
        self.env = {**env, "SMAPI_RUN_DIR": self.run_dir}
        os.makedirs(self.run_dir, exist_ok=True)
        self.driver = load_driver("smapi.drivers.nfs:NfsDriver")
        self.dispatcher = self.driver.dispatcher("storage")

    @contextlib.contextmanager
    def here(self) -> Iterator[None]:
        """Run the enclosed code as this host (its environment, restored after)."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def call(self, verb: str, **args: Any) -> Any:
        with self.here():
            return self.dispatcher.call(verb, {"dbg": "tests/nfs", **args})

    def read(self, sr: str, vdi: str, offset: int, length: int) -> bytes:
        with self.here():
            h = self.driver.open_vdi(sr, vdi)
            try:
                return bytes(h.read(offset, length))
            finally:
                h.close()

    def write(self, sr: str, vdi: str, offset: int, data: bytes) -> None:
        with self.here():
            h = self.driver.open_vdi(sr, vdi, writable=True)
            try:
                h.write(offset, data)
                h.flush()
            finally:
                h.close()

    def cleanup(self) -> None:
        from tests.nfs.factory import unmount_all

        unmount_all(self.run_dir)


def host_env(server: GaneshaServer, **extra: str) -> Dict[str, str]:
    return {"SMAPI_GC": "sync", "SMAPI_NFS_CLIENT": "fuse", **server.client_env(), **session_sanlock_env(), **extra}


def mounts_under(path: str) -> list:
    with open("/proc/mounts") as f:
        return [line for line in f if path in line]


def pids_of(pattern: str) -> list:
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[Optional[str]]:
    """Fails the test when a FUSE mount or daemon under its tmp_path survives it."""
    yield str(tmp_path)
    assert mounts_under(str(tmp_path)) == []
    assert [p for p in pids_of("smapi.drivers.nfs.fusefs") if str(tmp_path) in _cmdline(p)] == []


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
