"""The call log: one whole line per call or command, quoting that keeps a line one line, rotation by size."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smapi.common import calllog


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    path = tmp_path / "log" / "smapi.log"
    monkeypatch.setenv("SMAPI_LOG_FILE", str(path))
    monkeypatch.delenv("SMAPI_LOG", raising=False)
    return path


def test_a_call_line_names_verb_dbg_duration_and_outcome(log_file):
    calllog.log_call("SR.attach", "trace-42", 0.0123, "ok")
    calllog.log_call("VDI.stat", None, 0.001, "VDI_does_not_exist")
    lines = log_file.read_text().splitlines()
    assert len(lines) == 2
    assert " call SR.attach dbg=\"trace-42\" 12.3ms ok" in lines[0]
    assert lines[0].startswith("20") and f"smapi[{os.getpid()}]" in lines[0]
    assert lines[1].endswith("dbg=- 1.0ms VDI_does_not_exist")


def test_a_command_line_carries_the_dbg_of_the_current_call(log_file):
    previous = calllog.set_current_dbg("op 7")
    try:
        calllog.log_command(["/sbin/lvs", "--noheadings", "a b"], 0.5, "exit=0")
    finally:
        calllog.set_current_dbg(previous)
    (line,) = log_file.read_text().splitlines()
    assert 'cmd lvs dbg="op 7" 500.0ms exit=0 args: --noheadings "a b"' in line


@given(st.text())
def test_any_dbg_stays_on_one_line(dbg):
    quoted = calllog.quote(dbg)
    assert "\n" not in quoted and "\r" not in quoted
    assert quoted.startswith('"') and quoted.endswith('"')


def test_off_writes_nothing(log_file, monkeypatch):
    monkeypatch.setenv("SMAPI_LOG", "off")
    calllog.log_call("SR.scan", "x", 0.1, "ok")
    assert not log_file.exists()


def test_an_unwritable_log_never_fails_the_caller(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SMAPI_LOG_FILE", str(blocker / "under-a-file" / "smapi.log"))
    calllog.log_call("SR.scan", "x", 0.1, "ok")  # must not raise


def test_rotation_keeps_the_newest_files_and_loses_no_line(log_file, monkeypatch):
    monkeypatch.setenv("SMAPI_LOG_MAX_BYTES", "2000")
    monkeypatch.setenv("SMAPI_LOG_KEEP", "3")
    for i in range(200):
        calllog.log_call("VDI.stat", f"n{i}", 0.0, "ok")
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["smapi.log", "smapi.log.1", "smapi.log.2", "smapi.log.3"]
    for p in log_file.parent.iterdir():
        assert p.stat().st_size < 2000 + 200
    kept = [line for p in log_file.parent.iterdir() for line in p.read_text().splitlines()]
    numbers = sorted(int(line.split('dbg="n')[1].split('"')[0]) for line in kept)
    assert numbers == list(range(200 - len(numbers), 200)), "the newest lines are kept, none torn or lost"


def _writer(path: str, who: int) -> None:
    os.environ["SMAPI_LOG_FILE"] = path
    os.environ["SMAPI_LOG_MAX_BYTES"] = "4000"
    os.environ["SMAPI_LOG_KEEP"] = "50"
    for i in range(300):
        calllog.log_call("VDI.stat", f"w{who}-{i}", 0.0, "ok")


def test_concurrent_writers_rotating_keep_every_line_whole(log_file):
    log_file.parent.mkdir()
    procs = [multiprocessing.Process(target=_writer, args=(str(log_file), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = [line for p in log_file.parent.iterdir() for line in p.read_text().splitlines()]
    assert len(lines) == 1200
    assert all(line.endswith(" 0.0ms ok") and " call VDI.stat dbg=\"w" in line for line in lines)
