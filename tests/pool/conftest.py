"""Simulated pools: N hosts on one machine, each with its own sanlock daemon and its own SMAPI_RUN_DIR."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from smapi.datapath.servers import teardown_all
from smapi.sr.sanlock import daemon
from tests.pool.hostproc import HostProcess


def sanlock_unavailable() -> Optional[str]:
    if shutil.which("sanlock") is None and not os.path.exists("/usr/sbin/sanlock"):
        return "sanlock is not installed (ci/apt-packages.txt)"
    try:
        from smapi.sr.sanlock import _lib

        _lib.lib()
    except OSError as e:
        return str(e)
    return None


WHY = sanlock_unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")
#: short lease timings for tests (sanlock's default is 10 s): joining takes ~3 s, a dead host expires in ~68 s
TEST_IO_TIMEOUT = "1"


class SimHost:
    """One simulated host: a sanlock daemon, a run directory, and a process that runs code as this host."""

    def __init__(self, root: Path, name: str, extra_env: Dict[str, str]) -> None:
        self.name = name
        self.root = root / name
        self.sanlock_dir = str(self.root / "sanlock")
        self.run_dir = str(self.root / "run")
        os.makedirs(self.run_dir, exist_ok=True)
        self.daemon_pid = daemon.start(self.sanlock_dir, name)
        self.env = {"SANLOCK_RUN_DIR": self.sanlock_dir, "SMAPI_RUN_DIR": self.run_dir,
                    "SMAPI_SANLOCK_IO_TIMEOUT": TEST_IO_TIMEOUT, **extra_env}
        self._procs: List[HostProcess] = []
        #: run after the host's processes and daemon are stopped (e.g. unmounting its NFS mounts)
        self.cleanups: List[Callable[[], None]] = []

    def process(self) -> HostProcess:
        """A new process of this host (several model a host's concurrent verb processes)."""
        proc = HostProcess(self.name, self.env)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            proc.close()
        try:
            # datapath servers a failed test left active (they hold activation leases and the host's devices)
            with contextlib.suppress(Exception):
                teardown_all(self.run_dir)
            daemon.stop(self.sanlock_dir)  # first: leaving its lockspaces writes to the storage still mounted
        finally:
            for cleanup in self.cleanups:
                cleanup()


class HostSet:
    """Makes simulated hosts under `root`, numbered host1, host2, ... in order; `close` stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: List[SimHost] = []

    def __call__(self, n: int, **env: str) -> List[SimHost]:
        hosts = []
        for _ in range(n):
            hosts.append(SimHost(self.root, f"host{len(self.made) + 1}", env))
            self.made.append(hosts[-1])
        return hosts

    def close(self) -> None:
        errors = []
        for host in self.made:
            try:
                host.close()
            except Exception as e:  # noqa: BLE001 - stop the other hosts, then report
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def make_hosts(tmp_path: Path) -> Iterator[Callable[..., List[SimHost]]]:
    """make_hosts(n, **env) -> n hosts; their processes and daemons are stopped afterwards, even on failure."""
    if WHY:
        pytest.skip(WHY)
    hosts = HostSet(tmp_path)
    yield hosts
    hosts.close()


@pytest.fixture(params=["3", "4"], ids=["v3", "v4"])
def nfs_server(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A real ganesha (v3 in a netns, v4.1 on loopback), shared by the session."""
    from tests.nfs.factory import nfs_unavailable, shared_server

    why = nfs_unavailable()
    if why:
        pytest.skip(why)
    return shared_server(request.param)
