"""The call log behind the RPC servers: one line per call, the caller's dbg, the outcome, concurrent calls apart."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Dict, List

import pytest

from smapi.common import calllog
from smapi.core.driver import Driver
from smapi.interface.errors import Backend_error, Sr_not_attached, Unknown_method, Vdi_does_not_exist
from smapi.interface.skeletons.storage import SR_skeleton, VDI_skeleton
from smapi.rpc.client import connect

LINE = re.compile(r'^\S+Z \S+ smapi\[\d+\] (?P<rest>(call|note) .*)$')


@pytest.fixture
def log_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "log" / "smapi.log"
    monkeypatch.setenv("SMAPI_LOG_FILE", str(path))
    monkeypatch.delenv("SMAPI_LOG", raising=False)
    return path


def log_lines(log_file: Path) -> List[str]:
    text = log_file.read_text() if log_file.exists() else ""
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines), text
    return [LINE.match(line).group("rest") for line in lines]  # type: ignore[union-attr]


class _Meeting:
    """Two calls of SR.ls wait here for each other, so that both are in progress at once."""

    barrier = threading.Barrier(2, timeout=10)


class NotingSR(SR_skeleton):
    def ls(self, dbg: str) -> list:
        _Meeting.barrier.wait()
        calllog.note("inside the call")  # as a command run by the call would write its line
        _Meeting.barrier.wait()
        return [dbg]

    def stat(self, dbg: str, sr: str) -> dict:
        raise Sr_not_attached(sr)

    def destroy(self, dbg: str, sr: str) -> None:
        raise Backend_error.classic("SRNotEmpty")

    def detach(self, dbg: str, sr: str) -> None:
        calllog.note(f"detaching {sr}")


class NestingVDI(VDI_skeleton):
    def stat(self, dbg: str, sr: str, vdi: str) -> dict:
        self.driver.call("storage", "SR.detach", dbg=f"inner {dbg}", sr=sr)  # part of this call: no line of its own
        raise Vdi_does_not_exist(vdi)


class NotingDriver(Driver):
    name = "noting"
    storage = {"SR": NotingSR, "VDI": NestingVDI}


@pytest.fixture
def meeting():
    _Meeting.barrier.reset()
    yield _Meeting
    _Meeting.barrier.abort()  # never leave a server thread waiting


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_concurrent_server_calls_each_log_their_own_dbg(start_server, log_file, meeting, protocol):
    running = start_server(NotingDriver().dispatcher("storage"), protocol, "unix")
    results: Dict[str, list] = {}

    def ls(dbg: str) -> None:
        with connect(running.url, timeout=20) as client:
            results[dbg] = client.SR.ls(dbg=dbg)

    threads = [threading.Thread(target=ls, args=(dbg,)) for dbg in ("caller-a", "caller-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {"caller-a": ["caller-a"], "caller-b": ["caller-b"]}
    lines = log_lines(log_file)
    assert sorted(line for line in lines if line.startswith("note")) == [
        'note dbg="caller-a" inside the call', 'note dbg="caller-b" inside the call']
    calls = sorted(re.sub(r" [\d.]+ms ", " _ ", line) for line in lines if line.startswith("call"))
    assert calls == ['call SR.ls dbg="caller-a" _ ok', 'call SR.ls dbg="caller-b" _ ok']


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_server_errors_log_their_code(start_server, log_file, protocol):
    running = start_server(NotingDriver().dispatcher("storage"), protocol, "tcp")
    with connect(running.url, timeout=10) as client:
        with pytest.raises(Sr_not_attached):
            client.SR.stat(dbg="e1", sr="s")
        with pytest.raises(Backend_error):
            client.SR.destroy(dbg="e2", sr="s")
        with pytest.raises(Vdi_does_not_exist):
            client.VDI.stat(dbg="e3", sr="s", vdi="v")
    outcomes = [re.sub(r" [\d.]+ms ", " _ ", line) for line in log_lines(log_file)]
    assert outcomes == [
        'call SR.stat dbg="e1" _ Sr_not_attached',
        'call SR.destroy dbg="e2" _ SR_BACKEND_FAILURE_' + str(Backend_error.classic("SRNotEmpty").classic_code),
        'note dbg="e3" detaching s',  # the nested call runs under the caller's dbg, and writes no call line
        'call VDI.stat dbg="e3" _ Vdi_does_not_exist',
    ]


def test_a_hostile_method_name_stays_on_one_line(log_file):
    dispatcher = NotingDriver().dispatcher("storage")
    with pytest.raises(Unknown_method):
        dispatcher.call("SR.ls\n2026-01-01T00:00:00Z forged smapi[1] call SR.destroy", [{"dbg": "x\ny"}])
    (line,) = log_lines(log_file)
    assert line.startswith('call "SR.ls\\x0a2026-01-01T00:00:00Z forged smapi[1] call SR.destroy" dbg="x\\x0ay" ')
    assert line.endswith("ms Unknown_method")


def test_the_current_dbg_is_restored_after_a_call(log_file):
    previous = calllog.set_current_dbg("outer work")
    try:
        with pytest.raises(Sr_not_attached):
            NotingDriver().call("storage", "SR.stat", dbg="the call", sr="s")
        assert calllog.set_current_dbg("outer work") == "outer work"
    finally:
        calllog.set_current_dbg(previous)
