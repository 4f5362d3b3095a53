"""The command runner: each way a command can go wrong is its own exception, a timeout kills everything the command
started, and every command leaves one line in the call log."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from smapi.common import calllog, commands


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    path = tmp_path / "smapi.log"
    monkeypatch.setenv("SMAPI_LOG_FILE", str(path))
    monkeypatch.delenv("SMAPI_LOG", raising=False)
    return path


def _lines(path) -> list:
    return path.read_text().splitlines() if path.exists() else []


def test_a_command_that_works_gives_its_output_and_one_log_line(log_file):
    previous = calllog.set_current_dbg("trace-7")
    try:
        res = commands.run(["sh", "-c", "echo out; echo err >&2", "arg with space"])
    finally:
        calllog.set_current_dbg(previous)
    assert (res.returncode, res.stdout, res.stderr, res.ok) == (0, "out\n", "err\n", True)
    [line] = _lines(log_file)
    assert ' cmd sh dbg="trace-7" ' in line and " exit=0 args: -c " in line and '"arg with space"' in line


def test_stdin_is_empty_unless_input_is_given(log_file):
    assert commands.run(["cat"], timeout=10).stdout == ""
    assert commands.run(["cat"], input="fed\n").stdout == "fed\n"
    assert commands.run(["cat"], input=b"\x00\xff", text=False).stdout == b"\x00\xff"


def test_a_missing_program_is_not_found(log_file):
    with pytest.raises(commands.CommandNotFound) as e:
        commands.run(["smapi-no-such-tool", "x"])
    assert isinstance(e.value, FileNotFoundError) and "smapi-no-such-tool is not installed" in str(e.value)
    assert " not-found " in _lines(log_file)[-1]


def test_a_file_that_cannot_be_executed_is_not_runnable(tmp_path, log_file):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    with pytest.raises(commands.CommandNotRunnable) as e:
        commands.run([str(script)])
    assert isinstance(e.value, PermissionError)
    assert " not-runnable " in _lines(log_file)[-1]


def test_a_non_zero_exit_carries_the_status_and_stderr_tail(log_file):
    with pytest.raises(commands.CommandFailed) as e:
        commands.run(["sh", "-c", "echo the reason >&2; exit 3"])
    assert e.value.returncode == 3 and "exit status 3: the reason" in str(e.value)
    res = commands.run(["sh", "-c", "exit 4"], check=False)
    assert res.returncode == 4 and not res.ok
    assert [" exit=3 " in x or " exit=4 " in x for x in _lines(log_file)] == [True, True]


def test_a_long_stderr_is_quoted_by_its_tail(log_file):
    with pytest.raises(commands.CommandFailed) as e:
        commands.run([sys.executable, "-c", "import sys; sys.stderr.write('x' * 100000 + 'END'); sys.exit(1)"])
    assert str(e.value).endswith("END") and len(str(e.value)) < commands.TAIL_CHARS + 100


def test_a_signal_is_reported_as_killed(log_file):
    with pytest.raises(commands.CommandKilled) as e:
        commands.run(["sh", "-c", "kill -TERM $$"])
    assert e.value.signal == signal.SIGTERM
    assert commands.run(["sh", "-c", "kill -KILL $$"], check=False).returncode == -signal.SIGKILL
    assert " signal=15 " in _lines(log_file)[0]


def test_a_timeout_kills_the_command_and_what_it_started(tmp_path, log_file):
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(commands.CommandTimedOut) as e:
        # The grandchild keeps stdout open: without killing the whole group, collecting the output would wait 60 s.
        commands.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo started; wait"], timeout=1)
    assert time.monotonic() - start < 10
    assert isinstance(e.value, TimeoutError) and e.value.timeout == 1 and e.value.stdout == "started\n"
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)
    assert " timeout args: " in _lines(log_file)[-1]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_output_can_go_to_a_file(tmp_path, log_file):
    with open(tmp_path / "out.log", "wb") as out:
        res = commands.run(["sh", "-c", "echo to-file; echo err >&2"], stdout=out, stderr=out)
    assert (res.stdout, res.stderr) == ("", "")
    assert (tmp_path / "out.log").read_text() == "to-file\nerr\n"


def test_spawn_logs_the_start_and_hands_back_the_process(tmp_path, log_file):
    proc = commands.spawn(["sleep", "30"])
    try:
        assert proc.poll() is None and os.getsid(proc.pid) == proc.pid  # a session of its own
    finally:
        proc.kill()
        proc.wait()
    assert f" started pid={proc.pid} args: 30" in _lines(log_file)[-1]
    with pytest.raises(commands.CommandNotFound):
        commands.spawn(["smapi-no-such-daemon"])


def test_importing_the_runner_does_not_import_subprocess():
    import subprocess as sp

    code = "import sys; import smapi.common.commands, smapi.common.files; print('subprocess' in sys.modules)"
    out = sp.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_an_interrupted_caller_takes_its_command_down(tmp_path, log_file):
    pidfile = tmp_path / "cmd.pid"

    def interrupt(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            commands.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not _alive(int(pidfile.read_text()))
    assert " interrupted args: " in _lines(log_file)[-1]
