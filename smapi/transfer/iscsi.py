"""iSCSI exposures: a private tgtd per exposure, its LUN backed by the VDI through a one-file FUSE mount.

tgtd's backing store must be a file or block device, and a VDI is usually a VHD chain, so the exposure server
mounts a FUSE file system holding one file, `disk`, whose reads and writes go to the VDI's data handle (the same
`Disk` the HTTP mode serves). tgtd runs in the foreground as the exposure server's child, with a private control
socket (`-C <n>`: /var/run/tgtd/socket.<n>), one target (IQN from the record), LUN 1 with `scsi_sn` = the VDI uuid
and `scsi_id` = the uuid's first 24 hex digits (unique for VPD page 0x83, as the Transfer VM did), one-way CHAP
with the exposure's username and password, `readonly=1` for read-only exposures.

Stopping follows the order that releases everything (real-stacks §2.1): targets offline, delete target, delete
system, wait for tgtd, remove its socket files; then unmount the FUSE file (`fusermount3 -u`) and join its thread.
`clean_leftovers` does the same from a state file when the exposure server died without doing it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import socket
import stat
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from smapi.common import commands

if TYPE_CHECKING:
    import subprocess

# mfusepy picks libfuse2 unless told: libfuse2 has no big writes and crawls at 4 KiB per request.
os.environ.setdefault("FUSE_LIBRARY_PATH", "libfuse3.so.3")

TGTD_SOCKET_DIR = "/var/run/tgtd"
TID = 1
LUN = 1
START_TIMEOUT = 20.0


def tgtadm(cp: int, *args: str, check: bool = True) -> commands.CommandResult:
    r = commands.run(["tgtadm", "-C", str(cp), *args], timeout=30, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"tgtadm {' '.join(a for a in args if a)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r


def _free_control_port() -> int:
    for _ in range(200):
        cp = random.randint(100, 999)  # tgtd refuses larger control port numbers ("out of range")
        if not os.path.exists(os.path.join(TGTD_SOCKET_DIR, f"socket.{cp}")):
            return cp
    raise RuntimeError("no free tgtd control socket number")


def connections_on(port: int) -> int:
    """Established TCP connections to local `port` (from /proc/net/tcp{,6})."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except OSError:
            continue
    return count


def _mounted(path: str) -> bool:
    try:
        with open("/proc/mounts") as f:
            return any(line.split()[1] == path for line in f if len(line.split()) > 1)
    except OSError:
        return False


def _unmount(path: str) -> None:
    if _mounted(path) and not commands.run(["fusermount3", "-u", path], check=False).ok:
        commands.run(["fusermount3", "-u", "-z", path], check=False)


def _stop_tgtd(cp: int, proc: Optional[subprocess.Popen], pid: int = 0) -> None:
    tgtadm(cp, "--op", "update", "--mode", "sys", "--name", "State", "-v", "offline", check=False)
    tgtadm(cp, "--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", str(TID), "--force", check=False)
    tgtadm(cp, "--op", "delete", "--mode", "system", check=False)
    if proc is not None:
        if not commands.wait(proc, 10):
            proc.kill()
            proc.wait(5)
    elif pid:
        deadline = time.monotonic() + 10
        while _is_tgtd(pid, cp) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_tgtd(pid, cp):
            os.kill(pid, 9)
    for suffix in ("", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(TGTD_SOCKET_DIR, f"socket.{cp}{suffix}"))


def _is_tgtd(pid: int, cp: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
    return not zombie and bool(args) and args[0].endswith(b"tgtd") and str(cp).encode() in args


def _make_fuse_ops(disk: Any, ready: threading.Event) -> Any:
    import mfusepy

    class OneFile(mfusepy.Operations):
        """`/disk`: the VDI, byte for byte. Nothing else exists or can be created."""

        use_ns = True

        def init(self, path: str) -> None:
            ready.set()  # the loop runs: libfuse has installed its signal handlers by now

        def getattr(self, path: str, fh: Optional[int] = None) -> Dict[str, int]:
            now = int(time.time() * 1e9)
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o700, "st_nlink": 2, "st_size": 0, "st_atime": now,
                        "st_mtime": now, "st_ctime": now}
            if path == "/disk":
                mode = 0o600 if disk.writable else 0o400
                return {"st_mode": stat.S_IFREG | mode, "st_nlink": 1, "st_size": disk.size, "st_atime": now,
                        "st_mtime": now, "st_ctime": now, "st_blocks": -(-disk.size // 512)}
            raise mfusepy.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: int) -> List[str]:
            return [".", "..", "disk"]

        def open(self, path: str, flags: int) -> int:
            if path != "/disk":
                raise mfusepy.FuseOSError(errno.ENOENT)
            if (flags & os.O_ACCMODE) != os.O_RDONLY and not disk.writable:
                raise mfusepy.FuseOSError(errno.EROFS)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if offset >= disk.size:
                return b""
            return disk.read(offset, min(size, disk.size - offset))

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            if offset + len(data) > disk.size:
                raise mfusepy.FuseOSError(errno.ENOSPC)
            try:
                disk.write(offset, bytes(data))
            except PermissionError:
                raise mfusepy.FuseOSError(errno.EROFS) from None
            return len(data)

        def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
            if length != disk.size:
                raise mfusepy.FuseOSError(errno.EPERM)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            disk.flush()
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        def statfs(self, path: str) -> Dict[str, int]:
            return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": disk.size // 4096, "f_bfree": 0,
                    "f_bavail": 0, "f_namemax": 255}

    return OneFile()


class IscsiExport:
    def __init__(self, exposure: Any, disk: Any) -> None:
        self.e = exposure
        self.disk = disk
        self.mountpoint = os.path.join(exposure.directory, "mnt")
        self.cp = 0
        self.tgtd: Optional[subprocess.Popen] = None
        self._fuse: Optional[threading.Thread] = None
        self._fuse_error: List[BaseException] = []

    # -- FUSE ---------------------------------------------------------------------------------------------------
    def _mount(self) -> None:
        import signal

        import mfusepy

        os.makedirs(self.mountpoint, exist_ok=True)
        ready = threading.Event()
        ops = _make_fuse_ops(self.disk, ready)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

        def serve() -> None:
            try:
                mfusepy.FUSE(ops, self.mountpoint, foreground=True, nothreads=False, direct_io=True,
                             fsname="smapi-transfer", subtype="smapi-transfer", default_permissions=False)
            except BaseException as exc:  # reported to the starter
                self._fuse_error.append(exc)
                ready.set()

        self._fuse = threading.Thread(target=serve, name="fuse", daemon=True)
        self._fuse.start()
        if not ready.wait(START_TIMEOUT) or self._fuse_error:
            raise RuntimeError(f"FUSE mount of {self.mountpoint} failed: {self._fuse_error}")
        # libfuse took SIGTERM/SIGINT/SIGHUP for itself; the exposure server stops in its own order (tgtd first),
        # so they go back to Python.
        for sig, handler in handlers.items():
            if callable(handler) or handler in (signal.SIG_DFL, signal.SIG_IGN):
                signal.signal(sig, handler)
        deadline = time.monotonic() + START_TIMEOUT
        while not _mounted(self.mountpoint) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _unmount(self) -> None:
        _unmount(self.mountpoint)
        if self._fuse is not None:
            self._fuse.join(10)

    # -- tgtd -----------------------------------------------------------------------------------------------------
    def _start_tgtd(self) -> None:
        e = self.e
        self.cp = _free_control_port()
        if e.port == 0:
            e.port = _free_tcp_port(e.ip)  # tgtd must be told a port; "0" means any free one, as for HTTP
        e.extra.update(tgtd_cp=self.cp, mountpoint=self.mountpoint)
        e.save()
        log = open(os.path.join(e.directory, "tgtd.log"), "ab")  # noqa: SIM115 - the child keeps it
        portal = f"[{e.ip}]:{e.port}" if ":" in e.ip else f"{e.ip}:{e.port}"
        try:
            # tgtd stays in our session, the exposure server's child: it goes when the server goes.
            self.tgtd = commands.spawn(["tgtd", "-f", "-C", str(self.cp), "--iscsi", f"portal={portal}"],
                                       stdout=log, stderr=log, cwd=None, new_session=False)
        finally:
            log.close()
        e.extra["tgtd_pid"] = self.tgtd.pid
        e.save()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.tgtd.poll() is not None:
                raise RuntimeError(f"tgtd exited with {self.tgtd.returncode} (see tgtd.log)")
            if tgtadm(self.cp, "--lld", "iscsi", "--mode", "target", "--op", "show", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("tgtd did not start")
            time.sleep(0.05)
        # tgtd keeps running when it cannot listen; find out here rather than from the first client.
        while not _listening(e.ip, e.port):
            if time.monotonic() > deadline or self.tgtd.poll() is not None:
                raise RuntimeError(f"cannot listen on {e.ip}:{e.port} (tgtd: Address already in use?)")
            time.sleep(0.05)

    def _configure(self) -> None:
        e, cp = self.e, self.cp
        a = ("--lld", "iscsi")
        tgtadm(cp, *a, "--mode", "target", "--op", "new", "--tid", str(TID), "--targetname", e.iscsi_iqn)
        tgtadm(cp, *a, "--mode", "logicalunit", "--op", "new", "--tid", str(TID), "--lun", str(LUN),
               "--backing-store", os.path.join(self.mountpoint, "disk"))
        scsi_id = e.vdi_uuid.replace("-", "")[:24]
        params = f"scsi_sn={e.iscsi_sn[:36]},scsi_id={scsi_id}" + (",readonly=1" if e.read_only else "")
        tgtadm(cp, *a, "--mode", "logicalunit", "--op", "update", "--tid", str(TID), "--lun", str(LUN),
               "--params", params)
        tgtadm(cp, *a, "--mode", "account", "--op", "new", "--user", e.username, "--password", e.password)
        tgtadm(cp, *a, "--mode", "account", "--op", "bind", "--tid", str(TID), "--user", e.username)
        tgtadm(cp, *a, "--mode", "target", "--op", "bind", "--tid", str(TID), "--initiator-address", "ALL")

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        if shutil.which("tgtd") is None or shutil.which("tgtadm") is None:
            raise RuntimeError("tgtd is not installed (Debian: tgt)")
        try:
            self._mount()
            self._start_tgtd()
            self._configure()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.cp:
            _stop_tgtd(self.cp, self.tgtd)
            self.cp = 0
        self._unmount()

    def idle_for(self) -> Optional[float]:
        if connections_on(self.e.port):
            self._last = time.monotonic()
            return None
        last = getattr(self, "_last", None)
        if last is None:
            self._last = last = time.monotonic()
        return time.monotonic() - last


def _free_tcp_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _listening(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def clean_leftovers(exposure: Any) -> None:
    """Stop a tgtd and unmount a FUSE file an exposure server left behind (it was killed)."""
    cp = int(exposure.extra.get("tgtd_cp") or 0)
    pid = int(exposure.extra.get("tgtd_pid") or 0)
    if cp and pid and _is_tgtd(pid, cp):
        _stop_tgtd(cp, None, pid)
    mountpoint = exposure.extra.get("mountpoint")
    if mountpoint:
        _unmount(mountpoint)
