"""NFS SRs under test: `nfs_sr_factory` variants for the conformance suite and tests/nfs.

One real ganesha per server shape is started on first use and shared by the whole test session (starting one per
test would cost more than most tests); every factory call gets its own directory on the export as `serverpath`,
so SRs of different tests never see each other. The servers stop at interpreter exit (and die with the test
process anyway: PR_SET_PDEATHSIG); `SRUnderTest.cleanup()` unmounts whatever the SR left mounted.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from typing import TYPE_CHECKING, Callable, Dict, Optional

from tests.nfs.ganesha import GaneshaServer

if TYPE_CHECKING:
    # imported where used: tests/sr/drivers.py imports this module to register the NFS factories
    from tests.sr.drivers import SRUnderTest

_servers: Dict[str, GaneshaServer] = {}
_lock = threading.Lock()
_sanlock_dir: Optional[str] = None
#: short lease timings in tests (joining a lockspace ~3 s instead of ~20 s)
TEST_IO_TIMEOUT = "1"


def session_sanlock_env() -> Dict[str, str]:
    """The sanlock daemon of this test process, started on first use and stopped at exit.

    libsanlock talks to one daemon per process, so the test process is one host: SRs of in-process tests join
    their lockspaces through this daemon; tests of several hosts run each host in its own process (tests/pool)."""
    global _sanlock_dir
    from smapi.sr.sanlock import daemon

    with _lock:
        if _sanlock_dir is None or not daemon.answering(_sanlock_dir):
            _sanlock_dir = tempfile.mkdtemp(prefix="smapi-sanlock-")
            daemon.start(_sanlock_dir, f"pytest-{os.getpid()}")
            atexit.register(_stop_sanlock, _sanlock_dir)
        return {"SANLOCK_RUN_DIR": _sanlock_dir, "SMAPI_SANLOCK_IO_TIMEOUT": TEST_IO_TIMEOUT}


def _stop_sanlock(directory: str) -> None:
    from smapi.sr.sanlock import daemon

    daemon.stop(directory)
    shutil.rmtree(directory, ignore_errors=True)


def nfs_unavailable() -> Optional[str]:
    """Why NFS SRs cannot be tested here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, FUSE mounts)"
    for tool in ("ganesha.nfsd", "rpcbind", "fusermount3", "nsenter", "unshare", "showmount", "sanlock"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (ci/apt-packages.txt)"
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so") and not any(
        os.path.exists(os.path.join(d, "libfsalvfs.so")) for d in ("/usr/lib/ganesha", "/usr/lib64/ganesha")
    ):
        return "nfs-ganesha-vfs is not installed"
    try:
        import mfusepy  # noqa: F401
        import nfs_rs  # noqa: F401
    except ImportError as e:
        return f"python package missing: {e}"
    return None


def shared_server(shape: str) -> GaneshaServer:
    """The session's server of this shape ("3": v3+v4 in a netns, "4": v4 on loopback), started if needed."""
    with _lock:
        server = _servers.get(shape)
        if server is None or not server.running:
            if server is not None:
                server.destroy()
            server = _servers[shape] = GaneshaServer(shape).start()
        return server


def stop_all_servers() -> None:
    global _sanlock_dir
    if _sanlock_dir is not None:  # first: leaving its lockspaces needs the servers
        _stop_sanlock(_sanlock_dir)
        _sanlock_dir = None
    with _lock:
        while _servers:
            _servers.popitem()[1].destroy()


atexit.register(stop_all_servers)


def unmount_all(run_dir: str) -> None:
    """Unmount every NFS mount an SR left under this run directory (a test that failed before SR.detach)."""
    from smapi.drivers.nfs.mount import FuseMounter, is_mounted

    base = os.path.join(run_dir, "nfs")
    if not os.path.isdir(base):
        return
    for name in os.listdir(base):
        if name.endswith((".pid", ".log")):
            continue
        path = os.path.join(base, name)
        # not os.path.isdir: a mount whose server is away fails stat() and must go all the same
        if is_mounted(path) or os.path.exists(path + ".pid"):
            FuseMounter().unmount(path)


def device_config(server: GaneshaServer, serverpath: str, nfsversion: str) -> Dict[str, str]:
    dc = {"server": server.host, "serverpath": serverpath, "nfsversion": nfsversion}
    if server.version == "4":
        dc["port"] = str(server.port)
    return dc


def make_factory(shape: str, nfsversion: str, name: str) -> Callable[[str | os.PathLike[str]], SRUnderTest]:
    def factory(tmp_path: str | os.PathLike[str]) -> SRUnderTest:
        from tests.sr.drivers import SRUnderTest

        server = shared_server(shape)
        root = os.fspath(tmp_path)
        run_dir = os.path.join(root, "run")
        os.makedirs(run_dir, exist_ok=True)
        # A fresh directory on the export per SR under test: the serverpath its SRs live in.
        sub = f"t-{uuid.uuid4().hex[:12]}"
        os.makedirs(os.path.join(server.export_dir, sub))
        env = {"SMAPI_RUN_DIR": run_dir, "SMAPI_GC": "sync", "SMAPI_NFS_CLIENT": "fuse", **server.client_env(),
               **session_sanlock_env()}
        sut = SRUnderTest(
            driver_spec="smapi.drivers.nfs:NfsDriver",
            device_config=device_config(server, f"{server.serverpath}/{sub}", nfsversion),
            env=env,
            name=name,
        )
        sut._cleanups.append(lambda: unmount_all(run_dir))
        return sut

    factory.__name__ = f"nfs_sr_factory_{name.replace('.', '_')}"
    return factory


#: NFSv3 (ganesha with rpcbind in a private network namespace)
nfs3_sr_factory = make_factory("3", "3", "nfs3")
#: NFSv4.1 (ganesha v4-only on 127.0.0.1, no rpcbind)
nfs4_sr_factory = make_factory("4", "4.1", "nfs4")
nfs_sr_factory = nfs4_sr_factory

NFS_FACTORIES: Dict[str, Callable[[str | os.PathLike[str]], SRUnderTest]] = {
    "nfs3": nfs3_sr_factory,
    "nfs4": nfs4_sr_factory,
}
