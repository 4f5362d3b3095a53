"""Datapath.import_activate: a Unix socket where xapi hands over the server end of an inbound NBD connection.

The volume is already active (xapi calls activate first); its NBD export is the one the datapath's attach hands
out. A relay process (`smapi.datapath.fd_relay`), started detached because per-verb executables exit after each
call, listens on the returned socket and joins every descriptor passed to it to that export. It is recorded
under the run directory and stopped by Datapath.deactivate.

    $SMAPI_RUN_DIR/import/<name>.json   {"pid", "socket", "nbd_socket", "sr", "vdi"}
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Optional

from smapi.interface.errors import Backend_error

#: Unix socket paths are limited to 107 bytes; longer run directories get their sockets in $TMPDIR
MAX_SOCKET_PATH = 100
READY_TIMEOUT = 10.0


def run_dir() -> str:
    return os.environ.get("SMAPI_RUN_DIR") or "/run/smapi"


def _name(sr: str, vdi: str) -> str:
    return hashlib.sha256(f"{sr}/{vdi}".encode()).hexdigest()[:16]


def _record_path(sr: str, vdi: str) -> str:
    return os.path.join(run_dir(), "import", _name(sr, vdi) + ".json")


def _socket_path(sr: str, vdi: str) -> str:
    path = os.path.join(run_dir(), "import", _name(sr, vdi) + ".sock")
    if len(path) > MAX_SOCKET_PATH:
        path = os.path.join(tempfile.gettempdir(), f"smapi-import-{os.getuid()}-{_name(sr, vdi)}.sock")
    return path


def _alive(record: Optional[Dict[str, Any]]) -> bool:
    from smapi.datapath import procs

    if not record:
        return False
    return procs.matches(int(record["pid"]), os.path.basename(sys.executable), str(record["socket"]))


def import_activate(call: Callable[..., object], dp: str, sr: str, vdi: str) -> str:
    from smapi.core.nbd_copy import parse_nbd_uri
    from smapi.core.v3_local import export_uri
    from smapi.datapath import runtime

    record_path = _record_path(sr, vdi)
    with runtime.locked(record_path + ".lock"):
        record = runtime.read_json(record_path)
        if _alive(record):
            assert record is not None
            return str(record["socket"])
        # attach is idempotent for the datapath that activated the volume: it names the export again
        address, _export = parse_nbd_uri(export_uri(call("VDI.attach", dp=dp, sr=sr, vdi=vdi, read_write=True),
                                                    vdi), "uri")
        if not isinstance(address, str):
            raise Backend_error("NO_NBD_EXPORT", [vdi, "the volume's NBD export is not a local Unix socket"])
        listen = _socket_path(sr, vdi)
        runtime.ensure_dir(os.path.dirname(listen))
        pid = _start_relay(listen, address)
        runtime.write_json(record_path, {"pid": pid, "socket": listen, "nbd_socket": address, "sr": sr, "vdi": vdi})
        return listen


def _start_relay(listen: str, nbd_socket: str) -> int:
    from smapi.common.paths import package_root

    if os.path.exists(listen):
        os.unlink(listen)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root(),
                                                                       os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "smapi.datapath.fd_relay", listen, nbd_socket], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + READY_TIMEOUT
    while not os.path.exists(listen):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise Backend_error("IMPORT_RELAY_FAILED", [listen, "the relay process did not start listening"])
        time.sleep(0.01)
    return proc.pid


def stop(sr: str, vdi: str) -> bool:
    """Stop the relay of an imported volume (Datapath.deactivate); False when there was none."""
    from smapi.datapath import procs, runtime

    record_path = _record_path(sr, vdi)
    with runtime.locked(record_path + ".lock"):
        record = runtime.read_json(record_path)
        if record is None:
            return False
        if _alive(record):
            procs.terminate(int(record["pid"]))
        if os.path.exists(record["socket"]):
            os.unlink(record["socket"])
        runtime.remove(record_path)
        return True
