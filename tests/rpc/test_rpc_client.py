"""The Python client: URLs, attribute access generated from the definitions, argument binding, exec://."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from smapi.interface.errors import (
    Backend_error,
    Internal_error,
    Invalid_argument,
    Unimplemented,
    Unknown_method,
    Vdi_does_not_exist,
)
from smapi.rpc.client import connect, make_transport
from smapi.rpc.exec_client import ExecTransport
from smapi.rpc.jsonrpc_client import JsonRpcTransport
from smapi.rpc.xmlrpc_client import XmlRpcTransport


@pytest.mark.parametrize("url, kind, where", [
    ("http://127.0.0.1:8080", XmlRpcTransport, ("127.0.0.1", 8080, None)),
    ("xmlrpc+http://localhost:81/RPC2", XmlRpcTransport, ("localhost", 81, None)),
    ("xmlrpc+unix:///run/smapi.sock", XmlRpcTransport, (None, None, "/run/smapi.sock")),
    ("jsonrpc+http://127.0.0.1:9", JsonRpcTransport, ("127.0.0.1", 9, None)),
    ("jsonrpc+unix:///run/smapi.sock", JsonRpcTransport, (None, None, "/run/smapi.sock")),
])
def test_urls(url, kind, where):
    transport = make_transport(url, timeout=3)
    assert isinstance(transport, kind)
    ep = transport.endpoint
    host, port, unix_path = where
    assert ep.unix_path == unix_path and ep.timeout == 3
    if unix_path is None:
        assert (ep.host, ep.port) == (host, port)
    exec_transport = make_transport("exec:///plugins/org.example", timeout=4)
    assert isinstance(exec_transport, ExecTransport) and exec_transport.directory == "/plugins/org.example"


@pytest.mark.parametrize("url", ["ftp://x", "https://127.0.0.1:1", "xmlrpc+unix://host/sock", "exec:relative",
                                 "jsonrpc+unix://", "http://"])
def test_bad_urls(url):
    with pytest.raises(ValueError):
        connect(url)


def test_attributes_come_from_the_definitions():
    client = connect("xmlrpc+unix:///nonexistent.sock")
    assert {"Query", "SR", "VDI"} <= set(dir(client))
    assert "attach" in dir(client.SR)
    assert "SR.attach(dbg: debug_info, sr: sr, device_config: (string * string) list) -> None" in \
        client.SR.attach.__doc__
    with pytest.raises(AttributeError, match="has no verb 'frobnicate'; it has: ls, create, attach"):
        client.SR.frobnicate  # noqa: B018
    with pytest.raises(AttributeError, match="no interface 'Volume'; it has: Query, VDI, SR"):
        client.Volume  # noqa: B018
    v3 = connect("xmlrpc+unix:///nonexistent.sock", api="v3")
    assert "Volume" in dir(v3) and "stat" in dir(v3.Volume)


def test_argument_binding_is_checked_locally():
    client = connect("xmlrpc+unix:///nonexistent.sock")
    with pytest.raises(Invalid_argument, match="not an argument of SR.ls"):
        client.SR.ls(dbg="x", sr="extra")
    with pytest.raises(Invalid_argument, match="given twice"):
        client.SR.ls("x", dbg="x")
    with pytest.raises(Invalid_argument, match="at most 1"):
        client.SR.ls("x", "y")
    with pytest.raises(Unknown_method):
        client.call("SR.frobnicate", dbg="x")
    # Correct calls reach the transport, which here has nothing to talk to.
    with pytest.raises(OSError):
        client.SR.ls("x")


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_positional_and_case_insensitive_calls(dirsr_dispatcher, start_server, tmp_path, protocol):
    running = start_server(dirsr_dispatcher, protocol, "unix")
    with connect(running.url) as client:
        client.SR.create("d", "sr1", {"path": str(tmp_path / "sr")}, 2**41)
        client.call("sr.ATTACH", dbg="d", sr="sr1", device_config={"path": str(tmp_path / "sr")})
        assert client.SR.ls("d") == ["sr1"]
        with pytest.raises(Vdi_does_not_exist) as info:
            client.VDI.destroy(dbg="d", sr="sr1", vdi="nope")
        assert info.value.params == ("nope",)


# --- exec:// against a fake plugin directory ------------------------------------------------------------

SCRIPT = """#!{python}
import json, os, sys, time
name = os.path.basename(sys.argv[0])
line = sys.stdin.readline()
with open(os.path.join(os.path.dirname(sys.argv[0]), "calls.log"), "a") as log:
    log.write(json.dumps({{"name": name, "argv": sys.argv[1:], "stdin": line, "rest": sys.stdin.read()}}) + "\\n")
args = json.loads(line)
{body}
"""

BODIES = {
    "SR.ls": 'print(json.dumps(["sr-" + args["dbg"]]))',
    "VDI.stat": 'print(json.dumps({"code": "SR_BACKEND_FAILURE", "params": ["Vdi_does_not_exist", args["vdi"]], '
                '"backtrace": {}})); sys.exit(1)',
    "VDI.destroy": 'print(json.dumps({"code": "SR_BACKEND_FAILURE_109", "params": ["chain too long", ""], '
                   '"backtrace": {}})); sys.exit(1)',
    "query.QUERY": 'print(json.dumps({"driver": "fake", "name": "n", "description": "d", "vendor": "v", '
                   '"copyright": "c", "version": "1", "required_api_version": "2", "features": [], '
                   '"configuration": {}}))',
    "SR.attach": 'print("this is not json")',
    "SR.detach": 'print("null")',
    "SR.destroy": 'print("Traceback: boom"); sys.exit(2)',
    "VDI.resize": 'print(json.dumps(str(args["new_size"])))',  # int64 as a string still decodes
    "VDI.epoch_begin": "time.sleep(10)",
    "VDI.compose": 'os.kill(os.getpid(), 9)',
}


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "plugin"
    d.mkdir()
    for name, body in BODIES.items():
        path = d / name
        path.write_text(SCRIPT.format(python=sys.executable, body=body))
        path.chmod(0o755)
    not_exec = d / "SR.reset"
    not_exec.write_text("#!/bin/sh\n")
    not_exec.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return d


def test_exec_transport(plugin_dir: Path):
    client = connect(f"exec://{plugin_dir}", timeout=5)
    assert client.SR.ls(dbg="d1") == ["sr-d1"]
    call = json.loads((plugin_dir / "calls.log").read_text().splitlines()[0])
    # The protocol: --json, one line of named args on stdin, then EOF.
    assert call == {"name": "SR.ls", "argv": ["--json"], "stdin": '{"dbg": "d1"}\n', "rest": ""}

    assert client.Query.query(dbg="d")["driver"] == "fake"  # found case-insensitively
    assert client.SR.detach(dbg="d", sr="s") is None
    assert client.VDI.resize(dbg="d", sr="s", vdi="v", new_size=2**41) == 2**41

    with pytest.raises(Vdi_does_not_exist) as info:
        client.VDI.stat(dbg="d", sr="s", vdi="v9")
    assert info.value.params == ("v9",)
    with pytest.raises(Backend_error) as backend:
        client.VDI.destroy(dbg="d", sr="s", vdi="v")
    assert backend.value.params == ("SR_BACKEND_FAILURE_109", ["chain too long", ""])

    with pytest.raises(Unimplemented, match="SR.scan"):
        client.SR.scan(dbg="d", sr="s")
    for verb, reason in ((lambda: client.SR.attach(dbg="d", sr="s", device_config={}), "bad json on stdout"),
                         (lambda: client.SR.destroy(dbg="d", sr="s"), "non-zero exit and bad json on stdout"),
                         (lambda: client.VDI.compose(dbg="d", sr="s", vdi1="a", vdi2="b"), "signalled")):
        with pytest.raises(Backend_error) as failed:
            verb()
        assert failed.value.code == "SCRIPT_FAILED" and failed.value.backend_params[1] == reason
    with pytest.raises(Backend_error, match="SCRIPT_NOT_EXECUTABLE"):
        client.SR.reset(dbg="d", sr="s")


def test_exec_timeout_and_bad_results(plugin_dir: Path):
    with pytest.raises(TimeoutError):
        connect(f"exec://{plugin_dir}", timeout=0.5).VDI.epoch_begin(dbg="d", sr="s", vdi="v")
    (plugin_dir / "SR.ls").write_text(SCRIPT.format(python=sys.executable, body='print("{}")'))
    with pytest.raises(Internal_error, match="invalid result"):
        connect(f"exec://{plugin_dir}").SR.ls(dbg="d")
    assert os.access(plugin_dir / "SR.ls", os.X_OK)
