"""The call log: one line per storage call and per external command, as classic sm writes SMlog.

Where lines go:
    SMAPI_LOG=syslog      the local syslog (facility daemon, ident "smapi")
    SMAPI_LOG=off         nowhere
    otherwise             the file SMAPI_LOG_FILE, by default /var/log/smapi/smapi.log

The file is rotated by size (SMAPI_LOG_MAX_BYTES, default 10 MiB; SMAPI_LOG_KEEP old files, default 5) by whichever
process finds it over the limit. A line looks like

    2026-12-07T15:50:01.123Z host1 smapi[4242] call SR.attach dbg="xapi-op-17" 12.3ms ok
    2026-12-07T15:50:01.140Z host1 smapi[4242] cmd lvs dbg="xapi-op-17" 4.1ms exit=0

Why not `logging.handlers.RotatingFileHandler`: importing it costs about 13 ms (it pulls in socket, pickle and
more), and xapi starts one process per storage call, so that would be paid on every call. Appending one line
with one `write` on an O_APPEND descriptor keeps lines of concurrent processes whole.

Logging never fails a call: a log that cannot be written is dropped silently.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from contextvars import ContextVar
from typing import Optional, Sequence

DEFAULT_FILE = "/var/log/smapi/smapi.log"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5

#: the trace id of the call being served, so that command lines name it too; a context variable, because the
#: RPC servers serve concurrent calls in threads (each thread sees its own)
_current_dbg: ContextVar[Optional[str]] = ContextVar("smapi_current_dbg", default=None)


def set_current_dbg(dbg: Optional[str]) -> Optional[str]:
    """Make `dbg` the trace id of lines written from now on (in this thread); returns the previous one."""
    previous = _current_dbg.get()
    _current_dbg.set(dbg)
    return previous


def log_call(verb: str, dbg: Optional[str], seconds: float, outcome: str) -> None:
    """One line for one storage call: `outcome` is `ok` or the error's code (its wire name)."""
    _emit(f"call {verb} dbg={quote(dbg)} {seconds * 1000:.1f}ms {outcome}")


def log_command(argv: Sequence[str], seconds: float, outcome: str) -> None:
    """One line for one external command: `outcome` is `exit=N`, `signal=N`, `timeout`, `not-found`, `not-runnable`,
    `interrupted` or `started pid=N` (a daemon; see smapi.common.commands)."""
    name = os.path.basename(str(argv[0])) if argv else "?"
    args = " ".join(quote(str(a)) if _needs_quote(str(a)) else str(a) for a in argv[1:])
    _emit(f"cmd {name} dbg={quote(_current_dbg.get())} {seconds * 1000:.1f}ms {outcome} args: {args}"[:4000])


def note(text: str) -> None:
    """A free-form line (recoveries, repairs): things an administrator reading the log should know."""
    _emit(f"note dbg={quote(_current_dbg.get())} {text}"[:4000])


def quote(value: Optional[str]) -> str:
    if value is None:
        return "-"
    text = str(value)[:500]
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in out)
    return f'"{out}"'


def _needs_quote(text: str) -> bool:
    return not text or any(c in text for c in ' "\\') or any(c < " " for c in text)


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _emit(body: str) -> None:
    mode = os.environ.get("SMAPI_LOG", "file").lower()
    if mode == "off":
        return
    if mode == "syslog":
        _to_syslog(body)
        return
    path = os.environ.get("SMAPI_LOG_FILE") or DEFAULT_FILE
    line = f"{_stamp()} {os.uname().nodename} smapi[{os.getpid()}] {body}\n"
    with suppress(OSError):  # the log is an aid, never a reason for a call to fail
        _append(path, line.encode("utf-8", "replace"))


def _to_syslog(body: str) -> None:
    import syslog  # a C module: cheap, and only loaded when asked for

    syslog.openlog("smapi", syslog.LOG_PID, syslog.LOG_DAEMON)
    syslog.syslog(syslog.LOG_INFO, body)


def _append(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
        if os.fstat(fd).st_size > _int_env("SMAPI_LOG_MAX_BYTES", DEFAULT_MAX_BYTES):
            _rotate(path, fd)
    finally:
        os.close(fd)


def _rotate(path: str, fd: int) -> None:
    """Shift path -> path.1 -> ... -> path.KEEP, once, by the process that wins the lock."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another process is rotating
    try:
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return  # rotated already, by the process that held the lock before us
        keep = max(1, _int_env("SMAPI_LOG_KEEP", DEFAULT_KEEP))
        for n in range(keep - 1, 0, -1):
            if os.path.exists(f"{path}.{n}"):
                os.replace(f"{path}.{n}", f"{path}.{n + 1}")
        os.replace(path, f"{path}.1")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return default
