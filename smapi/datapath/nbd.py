"""nbdkit servers for VDIs: start one per export on a Unix socket, find it again from any process, stop it.

Each server runs nbdkit with the native C plugin where it can (:mod:`smapi.datapath.native` decides, and the
record says which and why), else with the Python plugin of :mod:`smapi.datapath.nbd_plugin`; backgrounded by
nbdkit itself in a new session, so it outlives the verb process that started it (per-verb executables exit after
each call). Its pid and socket are recorded in a state file; ``stop`` works from that record alone, after checking
(``/proc/<pid>/cmdline``) that the pid still is that nbdkit.

    <run_dir>/nbd/<name>.json   {"export", "socket", "pid", "readonly", "image", "boot_id", "log", "owner"}
    <run_dir>/nbd/<name>.sock   the server's socket (nbdkit does not remove it itself)
    <run_dir>/nbd/<name>.pid    nbdkit's pidfile (written once the socket is bound)
    <run_dir>/nbd/<name>.log    nbdkit's stderr (read back when the start fails)

Every server answers two export names: ``<export>`` in the server's own mode, and ``<export>@ro``, which refuses
writes whatever that mode is; readers that join a writer (legal in the storage interface) get the second.

A Unix socket path is limited to 107 bytes. When ``<run_dir>/nbd/<name>.sock`` would be longer (deep test
directories), sockets are bound through a short alias, ``$TMPDIR/smapi-nbd-<uid>-<digest>``, a symlink to
``<run_dir>/nbd``: the files stay in the run directory, only the path handed to clients is shorter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import quote

from smapi.common import commands

from . import native, procs, runtime
from .model import DatapathError, ImageSpec
from .nbdclient import NbdClient, NbdProtocolError

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbd_plugin.py")
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(PLUGIN)))
SUBDIR = "nbd"
START_TIMEOUT = 30.0
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the terminating NUL
#: appended to an export name: the same disk, read-only on this connection
READONLY_SUFFIX = "@ro"


def nbd_uri(socket: str, export: str) -> str:
    """Standard NBD URI (libnbd, qemu); the export name and socket path are percent-encoded."""
    return f"nbd+unix:///{quote(export, safe='')}?socket={quote(socket, safe='/')}"


def classic_params_nbd(socket: str, export: str) -> str:
    """The classic blktap ``params_nbd`` form."""
    return f"nbd:unix:{socket}:exportname={export}"


@dataclass
class NbdExport:
    """A running (or recorded) server: one export of one image."""

    name: str  # file name in the run dir
    export: str  # the NBD export name (the VDI)
    socket: str
    pid: int
    readonly: bool
    image: ImageSpec
    boot_id: str
    log: str
    #: who started it (the SR engine: the SR's uuid); a server is only ever stopped or replaced by its owner
    owner: str = ""
    #: which nbdkit plugin serves it and why (smapi.datapath.native.Engine.to_json())
    engine: Optional[Dict[str, Any]] = None

    @property
    def uri(self) -> str:
        return nbd_uri(self.socket, self.export)

    @property
    def params_nbd(self) -> str:
        return classic_params_nbd(self.socket, self.export)

    def __post_init__(self) -> None:
        if not self.pid:  # recorded while starting: the server's pidfile (if any) names it
            self.pid = _read_pid(os.path.splitext(self.log)[0] + ".pid")

    def running(self) -> bool:
        """The recorded process is alive, from this boot, and still our nbdkit on this socket."""
        return (self.boot_id == runtime.boot_id() and self.pid > 0 and procs.running(self.pid)
                and procs.matches(self.pid, "nbdkit", self.socket))

    def to_json(self) -> Dict[str, Any]:
        return {"export": self.export, "socket": self.socket, "pid": self.pid, "readonly": self.readonly,
                "image": self.image.to_json(), "boot_id": self.boot_id, "log": self.log, "owner": self.owner,
                "engine": self.engine}

    @classmethod
    def from_json(cls, name: str, d: Dict[str, Any]) -> NbdExport:
        return cls(name, d["export"], d["socket"], int(d["pid"]), bool(d["readonly"]),
                   ImageSpec.from_json(d["image"]), d["boot_id"], d["log"], str(d.get("owner", "")),
                   d.get("engine"))


class NbdServer:
    """The nbdkit servers recorded under one run directory."""

    def __init__(self, run_dir: str, *, nbdkit: Optional[str] = None) -> None:
        self.dir = os.path.join(os.path.abspath(run_dir), SUBDIR)
        self.nbdkit = nbdkit or shutil.which("nbdkit") or "/usr/sbin/nbdkit"
        self.alias = os.path.join(tempfile.gettempdir(), f"smapi-nbd-{os.getuid()}-"
                                  + hashlib.sha256(self.dir.encode()).hexdigest()[:16])

    # -------------------------------------------------------------------------------------------- records
    def _name(self, export: str) -> str:
        name = runtime.file_name(export)
        if len(self._socket_path(name)) > _SUN_PATH_MAX:
            name = runtime.file_name("\0" + export)  # the digest form is shorter than most VDI keys
        if len(self._socket_path(name)) > _SUN_PATH_MAX:
            raise DatapathError(f"run directory {self.dir} is too long for a Unix socket path")
        return name

    def _path(self, name: str, suffix: str) -> str:
        return os.path.join(self.dir, name + suffix)

    def _socket_dir(self) -> str:
        # Decided by the length alone, so every process picks the same directory for one run dir.
        if len(os.path.join(self.dir, "x" * 34 + ".sock")) <= _SUN_PATH_MAX:
            return self.dir
        return self.alias

    def _socket_path(self, name: str) -> str:
        return os.path.join(self._socket_dir(), name + ".sock")

    def _ensure_alias(self) -> None:
        """Create (or check) the short symlink to the socket directory; refuse one that points elsewhere."""
        if self._socket_dir() == self.dir:
            return
        with contextlib.suppress(FileExistsError):
            os.symlink(self.dir, self.alias)
        try:
            target = os.readlink(self.alias)
        except OSError as e:
            raise DatapathError(f"socket alias {self.alias} is not a symlink: {e}") from e
        if target != self.dir:
            raise DatapathError(f"socket alias {self.alias} points to {target}, not {self.dir}")

    @contextlib.contextmanager
    def _alias_guard(self, *, shared: bool) -> Iterator[None]:
        """Starts hold this shared from creating the alias until nbdkit has bound its socket; removal holds it
        exclusively, so the alias never disappears between a start's check and its bind."""
        if self._socket_dir() == self.dir:
            yield  # no alias, nothing to guard (and no lock file in the socket directory)
            return
        runtime.ensure_dir(self.dir)
        fd = os.open(os.path.join(self.dir, ".alias.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove_alias(self) -> bool:
        """Drop the socket alias once no server is recorded (clients reach running ones through it)."""
        if self._socket_dir() == self.dir or not os.path.lexists(self.alias):
            return False
        with self._alias_guard(shared=False):
            if self.exports():
                return False
            with contextlib.suppress(OSError):
                if os.readlink(self.alias) == self.dir:
                    os.unlink(self.alias)
                    return True
        return False

    def address(self, export: str) -> str:
        """The socket ``export`` is (or will be) served on: known before the server starts."""
        return self._socket_path(self._name(export))

    def get(self, export: str) -> Optional[NbdExport]:
        """The recorded server of ``export`` (running or not), if any."""
        name = self._name(export)
        rec = runtime.read_json(self._path(name, ".json"))
        return NbdExport.from_json(name, rec) if rec else None

    def exports(self) -> List[NbdExport]:
        out = []
        for entry in sorted(os.listdir(self.dir)) if os.path.isdir(self.dir) else []:
            if entry.endswith(".json"):
                rec = runtime.read_json(os.path.join(self.dir, entry))
                if rec:
                    out.append(NbdExport.from_json(entry[: -len(".json")], rec))
        return out

    # -------------------------------------------------------------------------------------------- start
    def start(self, export: str, image: ImageSpec, *, readonly: bool, owner: str = "",
              lease: Optional[Callable[[int], None]] = None) -> NbdExport:
        """Start serving ``image`` as ``export``; returns once a client can connect.

        ``lease``: the server registers itself with the sanlock daemon, and ``lease(pid)`` is called once it is
        ready, to take the leases the server must hold (a shared SR's activation lease); if it raises, the server
        is stopped and the error propagates.

        Raises :class:`DatapathError` if a server for ``export`` is already running or nbdkit fails to start
        (the message carries nbdkit's own error, e.g. a missing parent).
        """
        old = self.get(export)
        if old is not None:
            if old.running():
                raise DatapathError(f"export {export!r} is already served by nbdkit pid {old.pid}")
            self._remove_files(old.name)
        name = self._name(export)
        runtime.ensure_dir(self.dir)
        sock, log, pidfile = self._socket_path(name), self._path(name, ".log"), self._path(name, ".pid")
        for leftover in (sock, pidfile):  # nbdkit removes neither; an old socket makes it fail with EADDRINUSE
            runtime.remove(leftover)
        # Not -f: nbdkit 1.32 arms PR_SET_PDEATHSIG in main() even without --exit-with-parent, so a foreground
        # server dies with the verb process that started it. Its own background fork clears that; the pidfile
        # appears once the socket is bound.
        cmd = [self.nbdkit, "-U", sock, "-P", pidfile, "--log=stderr", "--exportname", export]
        if readonly:
            cmd.append("-r")
        engine = native.choose(image, self.nbdkit, readonly=readonly)
        cmd += (native.plugin_args(engine, image, readonly=readonly, export=export) if engine.name == native.NATIVE
                else _python_plugin_args(image, readonly=readonly, export=export))
        if lease is not None:
            cmd.append("register_sanlock=1")
        rec = NbdExport(name, export, sock, 0, readonly, image, runtime.boot_id(), log, owner, engine.to_json())
        # Recorded before the spawn (pid 0: look in the pidfile) so a caller killed from here on leaves a trail.
        runtime.write_json(self._path(name, ".json"), rec.to_json())
        # The embedded interpreter is the system Python: keep the caller's virtualenv settings away from it.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        try:
            # nbdkit binds the socket before it backgrounds itself, so the alias is needed only until run returns.
            with open(log, "wb") as logf, self._alias_guard(shared=True):
                self._ensure_alias()
                # commands.run starts it in a new session: no signal aimed at the caller's terminal or process
                # group reaches the server.
                res = _run_nbdkit(cmd, logf, env, export, log)
            if res.returncode != 0:
                raise DatapathError(f"nbdkit for {export!r} failed to start (status {res.returncode}): {_tail(log)}")
            rec.pid = self._wait_ready(rec, pidfile)
            runtime.write_json(self._path(name, ".json"), rec.to_json())
            if lease is not None:
                lease(rec.pid)
        except BaseException:
            self.stop(export)
            raise
        return rec

    def _wait_ready(self, rec: NbdExport, pidfile: str) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            pid = _read_pid(pidfile)
            if pid and os.path.exists(rec.socket):
                try:
                    with NbdClient(rec.socket, rec.export, timeout=5.0):
                        return pid
                except (OSError, NbdProtocolError):
                    pass  # listening but not answering yet
            if pid and not procs.running(pid):
                raise DatapathError(f"nbdkit for {rec.export!r} exited: {_tail(rec.log)}")
            if time.monotonic() > deadline:
                raise DatapathError(f"nbdkit for {rec.export!r} not ready after {START_TIMEOUT:.0f}s: "
                                    f"{_tail(rec.log)}")
            time.sleep(0.01)

    # -------------------------------------------------------------------------------------------- use and stop
    def flush(self, export: str) -> bool:
        """Ask the server to make every write durable (NBD_CMD_FLUSH); False if nothing runs or it is read-only."""
        rec = self.get(export)
        if rec is None or not rec.running() or rec.readonly:
            return False
        try:
            with NbdClient(rec.socket, rec.export) as client:
                if client.info.can_flush:
                    client.flush()
        except (OSError, NbdProtocolError) as e:
            raise DatapathError(f"flush of {export!r} failed: {e}") from e
        return True

    def stop(self, export: str) -> bool:
        """Stop the server of ``export`` (from any process) and remove its files; True if one was running."""
        rec = self.get(export)
        if rec is None:
            return False
        was_running = rec.running()
        if was_running:
            # SIGTERM lets nbdkit call the plugin's cleanup, which commits outstanding VHD metadata.
            procs.terminate(rec.pid)
        self._remove_files(rec.name)
        return was_running

    def _remove_files(self, name: str) -> None:
        for suffix in (".sock", ".pid", ".log", ".json"):  # the record last: it is how a retry finds the rest
            runtime.remove(self._path(name, suffix))


def cleanup_stale(run_dir: str) -> List[str]:
    """Stop every server recorded under ``run_dir`` and remove its socket and files (a host restart, or a caller
    killed half way). A recorded pid is only signalled while it still is that nbdkit. Returns the exports cleaned.
    """
    server = NbdServer(run_dir)
    cleaned = []
    for rec in server.exports():
        if rec.running():
            procs.terminate(rec.pid)
        server._remove_files(rec.name)
        cleaned.append(rec.export)
    # Sockets and logs without a record (the record is written right after the spawn, but be thorough).
    if os.path.isdir(server.dir):
        for entry in os.listdir(server.dir):
            if entry.endswith((".sock", ".pid", ".log")) or ".tmp." in entry:
                runtime.remove(os.path.join(server.dir, entry))
    server.remove_alias()
    return cleaned


def _run_nbdkit(cmd: List[str], logf: Any, env: Dict[str, str], export: str, log: str) -> commands.CommandResult:
    try:
        return commands.run(cmd, stdout=logf, stderr=logf, cwd="/", env=env, timeout=START_TIMEOUT, check=False)
    except commands.CommandError as e:  # not installed, or hanging before it backgrounds itself
        raise DatapathError(f"nbdkit for {export!r} failed to start: {e}: {_tail(log)}") from None


def _python_plugin_args(image: ImageSpec, *, readonly: bool, export: str) -> List[str]:
    args = ["python", PLUGIN, f"image={image.path}", f"kind={image.kind}", f"mode={'ro' if readonly else 'rw'}",
            f"export={export}", f"smapi_root={PACKAGE_ROOT}"]
    if image.opener is not None:
        # The driver's code opens the volume inside the server (see ImageSpec); its arguments travel as JSON.
        args += [f"opener={image.opener}", f"opener_args={image.args}"]
    elif image.kind == "vhd":
        args.append(f"resolver_dir={image.resolver_dir}")
    return args


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no log)"
    text = data[-limit:].decode(errors="replace").strip()
    return text or "(empty log)"
