"""Writing a file so that a reader, or the next boot, sees either the old content or the new one, never a torn mix.

One durability, used for every document smapi keeps (SR documents, journals, run-state records, exposure state,
configuration it writes for tools):

1. the content goes into a temporary file in the target's own directory (a rename only replaces atomically within
   one file system), created with O_EXCL under a name of the pattern below;
2. the temporary file is fsynced: its data is on stable storage before anything points at it;
3. it is renamed over the target: readers see the old file or the new one, whole;
4. the directory is fsynced: the rename itself survives a crash.

When any step up to the rename fails (ENOSPC, EIO, EDQUOT...), the temporary file is removed and the target keeps
its old content; the error is raised. When only the directory fsync fails, the new content is in place but its
durability is not known: the error is raised all the same, so the caller does not report a durable write.

A process killed between 1 and 3 leaves its temporary file behind. Temporary files are named

    <target name>.tmp.<host tag>.<pid>.<nonce>

(host tag: 8 hex digits of a CRC of the host name; nonce: 8 random hex digits), so that
:func:`sweep_temp_files`, run when an SR is attached or scanned, can tell a leftover whose writer is gone (this
host, and the pid is dead or now belongs to a process started after the file was written) from a write in
progress, possibly by another host sharing the directory over NFS (left alone until it has not changed for
`foreign_age` seconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import zlib
from typing import IO, Any, Iterator, List, Optional, Union

#: name of a temporary file: the target's name, then ".tmp.<host tag>.<pid>.<nonce>"
TEMP_PATTERN = re.compile(r"(?P<target>.+)\.tmp\.(?P<host>[0-9a-f]{8})\.(?P<pid>[0-9]+)\.(?P<nonce>[0-9a-f]{8})\Z",
                          re.DOTALL)
#: names older smapi versions used for their temporary files ("<target>.tmp.<pid>" and "<target>.tmp.<pid>.<n>")
LEGACY_PATTERN = re.compile(r".+\.tmp\.[0-9]+(\.[0-9]+)?\Z", re.DOTALL)
#: how long a temporary file of another host (or of an unknown writer) must be unchanged before it counts as left
FOREIGN_AGE = 3600.0


def host_tag() -> str:
    return f"{zlib.crc32(os.uname().nodename.encode()):08x}"


def temp_path(path: str) -> str:
    """A fresh temporary name beside `path` (see the module's documentation for the pattern)."""
    return f"{path}.tmp.{host_tag()}.{os.getpid()}.{os.urandom(4).hex()}"


def fsync_dir(path: str) -> None:
    """Make the entries of directory `path` (a create, rename or unlink in it) durable."""
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str, *, mode: Optional[int] = None, text: bool = False) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` when the block ends without an exception.

    `mode`: the new file's permissions, exactly; None gives what ``open(path, "w")`` would (0o666 minus the
    umask). On an exception (in the block or while committing) the temporary file is removed and `path` is left
    as it was."""
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else mode)
    committed = False
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        with os.fdopen(fd, "w" if text else "wb", closefd=True) as f:
            fd = -1  # owned by `f` now
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        committed = True
    finally:
        if fd >= 0:
            os.close(fd)
        if not committed:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_dir(os.path.dirname(path))


def atomic_write(path: str, data: Union[bytes, str], *, mode: Optional[int] = None) -> None:
    """Replace `path` with `data` (str is written as UTF-8) with the durability described above."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_writer(path, mode=mode) as f:
        f.write(payload)


def write_json(path: str, value: Any, *, mode: Optional[int] = None) -> None:
    """`value` as JSON (sorted keys, one-space indent: diffable by an administrator), written atomically."""
    atomic_write(path, json.dumps(value, sort_keys=True, indent=1), mode=mode)


def read_json(path: str) -> Optional[Any]:
    """The JSON document at `path`, None when there is no such file."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def sweep_temp_files(directory: str, *, foreign_age: float = FOREIGN_AGE) -> List[str]:
    """Remove the temporary files in `directory` whose writer is gone; returns the names removed.

    A file of this host is removed when its pid is not running, or is running a process that started after the
    file was last changed (the pid was reused). A file of another host, or in an older smapi's naming, is removed
    once it has not changed for `foreign_age` seconds: that host's processes cannot be seen from here."""
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    here = host_tag()
    now = time.time()
    for name in sorted(names):
        match = TEMP_PATTERN.match(name)
        if match is None and not LEGACY_PATTERN.match(name):
            continue
        path = os.path.join(directory, name)
        try:
            changed = os.lstat(path).st_mtime
        except FileNotFoundError:
            continue  # its writer renamed or removed it meanwhile
        if match is not None and match.group("host") == here:
            stale = not _writer_alive(int(match.group("pid")), changed)
        else:
            stale = now - changed > foreign_age
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(name)
    if removed:
        fsync_dir(directory)
    return removed


def _writer_alive(pid: int, changed: float) -> bool:
    """pid runs a process that existed when the file was last changed (so it may still be writing it)."""
    if pid == os.getpid():
        return True
    started = process_start_time(pid)
    # /proc/stat's btime has a one-second granularity: a process started up to a second after the change may be
    # the writer.
    return started is not None and started <= changed + 1.0


def process_start_time(pid: int) -> Optional[float]:
    """When process `pid` started (seconds since the epoch), None when there is no such (live) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in ("Z", "X"):
        return None  # a zombie writes nothing any more
    # fields[0] is field 3 of stat (the state); the start time is field 22, in clock ticks since boot
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
