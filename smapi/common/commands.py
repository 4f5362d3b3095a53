"""Running external tools (lvm, losetup, iscsiadm, mount, tgtadm, nbdkit, openssl...): one way, one log line each.

:func:`run` runs a command to completion with a timeout and classifies what went wrong as a typed exception, which
each caller maps to the SMAPI error its callers expect:

    CommandNotFound      the program is not installed (also a FileNotFoundError)
    CommandNotRunnable   it exists but cannot be executed (permissions, bad interpreter...)
    CommandTimedOut      it did not finish in time; it was killed, with its whole process group (also a TimeoutError)
    CommandFailed        it exited non-zero (only with ``check=True``); carries stdout and a tail of stderr
    CommandKilled        a signal ended it (only with ``check=True``)

Every command is logged through :func:`smapi.common.calllog.log_command`: the argv, how long it took and its
outcome (``exit=N``, ``signal=N``, ``timeout``, ``not-found``, ``not-runnable``, ``interrupted``, ``started pid=N``).

:func:`spawn` starts a long-running daemon (a FUSE client, qemu-storage-daemon, tgtd, a background collector) and
returns its ``Popen``; its start is logged, the rest of its life is the caller's.

Commands run with stdin from /dev/null (a per-verb executable's stdin carries the call's arguments: a tool must not
read them) and in a session of their own, so that a timeout can kill everything the command started.

Importing this module costs nothing: subprocess is imported on the first command.
"""

from __future__ import annotations

import os
import signal
import time
from typing import IO, TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Tuple, Union

from smapi.common.calllog import log_command

if TYPE_CHECKING:
    import subprocess

#: seconds a command may take when its caller names no timeout
DEFAULT_TIMEOUT = 120.0
#: how long a killed command is waited for before it is given up on (a process in uninterruptible sleep, for
#: instance a umount of a dead NFS server, cannot be reaped until the kernel lets it go)
KILL_GRACE = 5.0
#: how much of stderr an error message quotes
TAIL_CHARS = 2000

Output = Union[None, int, IO[Any]]


class CommandError(Exception):
    """A command that did not do its job; `argv` is what was run."""

    def __init__(self, argv: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.argv = list(argv)


class CommandNotFound(CommandError, FileNotFoundError):
    pass


class CommandNotRunnable(CommandError, PermissionError):
    pass


class CommandTimedOut(CommandError, TimeoutError):
    def __init__(self, argv: Sequence[str], timeout: float, stdout: str = "", stderr: str = "") -> None:
        super().__init__(argv, f"{_name(argv)} did not finish within {timeout:g}s")
        self.timeout = timeout
        self.stdout, self.stderr = stdout, stderr


class CommandFailed(CommandError):
    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.argv, f"{_name(result.argv)} failed with exit status {result.returncode}: "
                                      f"{result.stderr_tail or result.stdout.strip()[-TAIL_CHARS:] or 'no output'}")
        self.result = result
        self.returncode = result.returncode
        self.stdout, self.stderr = result.stdout, result.stderr


class CommandKilled(CommandError):
    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.argv, f"{_name(result.argv)} was killed by signal {-result.returncode}: "
                                      f"{result.stderr_tail or 'no output'}")
        self.result = result
        self.signal = -result.returncode
        self.stdout, self.stderr = result.stdout, result.stderr


class CommandResult:
    """What a finished command left: `returncode` (negative: the signal that ended it), stdout and stderr (str, or
    bytes when run with ``text=False``; empty when not captured)."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: Any, stderr: Any, seconds: float) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def stderr_tail(self) -> str:
        text = self.stderr.decode(errors="replace") if isinstance(self.stderr, bytes) else self.stderr
        return text.strip()[-TAIL_CHARS:]


def run(argv: Sequence[str], *, timeout: Optional[float] = DEFAULT_TIMEOUT, check: bool = True,
        input: Union[None, str, bytes] = None, env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
        text: bool = True, stdout: Output = None, stderr: Output = None) -> CommandResult:
    """Run `argv` to completion; stdout and stderr are captured unless a file (or descriptor) is given for them.

    Raises CommandNotFound, CommandNotRunnable and CommandTimedOut always; CommandFailed and CommandKilled only
    with `check` (without it, the result's returncode tells)."""
    import subprocess

    argv = [str(a) for a in argv]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE if stderr is None else stderr,
            env=dict(env) if env is not None else None, cwd=cwd, text=text, start_new_session=True, close_fds=True)
    except OSError as e:
        raise _not_started(argv, e, start) from None
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = _kill(proc)
        log_command(argv, time.monotonic() - start, "timeout")
        raise CommandTimedOut(argv, timeout or 0.0, _as_text(out), _as_text(err)) from None
    except BaseException:  # KeyboardInterrupt, a signal handler raising: the command must not outlive its caller
        _kill(proc)
        log_command(argv, time.monotonic() - start, "interrupted")
        raise
    empty: Any = "" if text else b""
    result = CommandResult(argv, proc.returncode, empty if out is None else out, empty if err is None else err,
                           time.monotonic() - start)
    outcome = f"exit={result.returncode}" if result.returncode >= 0 else f"signal={-result.returncode}"
    log_command(argv, result.seconds, outcome)
    if check and result.returncode > 0:
        raise CommandFailed(result)
    if check and result.returncode < 0:
        raise CommandKilled(result)
    return result


def spawn(argv: Sequence[str], *, stdout: Output = None, stderr: Output = None, env: Optional[Mapping[str, str]] = None,
          cwd: Optional[str] = "/", pass_fds: Sequence[int] = (), new_session: bool = True) -> subprocess.Popen:
    """Start a daemon and return its Popen (stdin /dev/null; stdout/stderr to /dev/null unless given).

    In a session of its own by default, so that no signal aimed at the caller's terminal or process group reaches
    it and it outlives the verb that started it."""
    import subprocess

    argv = [str(a) for a in argv]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL if stdout is None else stdout,
            stderr=subprocess.DEVNULL if stderr is None else stderr, env=dict(env) if env is not None else None,
            cwd=cwd, pass_fds=tuple(pass_fds), start_new_session=new_session, close_fds=True)
    except OSError as e:
        raise _not_started(argv, e, start) from None
    log_command(argv, time.monotonic() - start, f"started pid={proc.pid}")
    return proc


def wait(proc: subprocess.Popen, timeout: Optional[float]) -> bool:
    """Wait up to `timeout` seconds for a spawned process to exit (reaping it); True when it has."""
    import subprocess

    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _not_started(argv: List[str], error: OSError, start: float) -> CommandError:
    if isinstance(error, FileNotFoundError) and error.filename in (argv[0], None):
        log_command(argv, time.monotonic() - start, "not-found")
        return CommandNotFound(argv, f"{_name(argv)} is not installed (not found: {argv[0]})")
    log_command(argv, time.monotonic() - start, "not-runnable")
    return CommandNotRunnable(argv, f"{_name(argv)} cannot be run: {error.strerror or error}")


def _kill(proc: subprocess.Popen) -> Tuple[Any, Any]:
    """Kill the command and everything it started (its session); collect what it wrote, waiting at most
    KILL_GRACE seconds."""
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        return proc.communicate(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        # Unkillable for now (uninterruptible sleep); Popen reaps it later, when it is garbage collected.
        return None, None


def _as_text(data: Any) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else str(data)


def _name(argv: Sequence[str]) -> str:
    return os.path.basename(str(argv[0])) if argv else "?"
