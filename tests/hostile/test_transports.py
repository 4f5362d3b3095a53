"""The mutation corpus over every transport: XML-RPC, JSON-RPC, per-verb executables, the classic `FileSR`
executable and the CLI. Each hostile name gets a typed refusal naming the argument (never Internal_error, never a
traceback), and the canary beside the SR is untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import xmlrpc.client
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from click.testing import CliRunner

from smapi.cli.main import cli
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Internal_error, Invalid_argument, SmapiError
from smapi.rpc.client import connect
from smapi.rpc.jsonrpc import make_jsonrpc_server
from smapi.rpc.plugin_dir import install_plugin
from smapi.rpc.xmlrpc import make_xmlrpc_server
from tests.hostile.arena import NAME_CORPUS

REPO = Path(__file__).resolve().parents[2]
#: XML 1.0 cannot carry these at all: an XML-RPC client cannot even send them
XML_UNSENDABLE = {n for n in NAME_CORPUS if any(ord(c) < 32 and c not in "\t\n\r" for c in n)}
#: a few of each kind for the transports that start a process per call (cold starts cost CI time)
PROCESS_SUBSET = ("", ".", "/etc/passwd", "x/../../../../canary/f", "../../canary/new", "a" * 100_000, "a\nb")


@pytest.fixture
def servers(attached) -> Iterator[Dict[str, Any]]:
    sock_dir = tempfile.mkdtemp(prefix="smapi-hostile-", dir="/tmp")
    started = []
    for make, name in ((make_xmlrpc_server, "xmlrpc"), (make_jsonrpc_server, "jsonrpc")):
        server = make(attached.dispatcher, unix_path=f"{sock_dir}/{name}.sock")
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
    plugin = attached.arena.root.parent / "plugin"
    install_plugin("file", str(plugin), api="storage")
    yield {"xmlrpc": f"xmlrpc+unix://{sock_dir}/xmlrpc.sock", "jsonrpc": f"jsonrpc+unix://{sock_dir}/jsonrpc.sock",
           "exec": f"exec://{plugin}", "plugin": plugin}
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)
    shutil.rmtree(sock_dir, ignore_errors=True)


def _refused_over(url: str, method: str, **args: Any) -> SmapiError:
    iface, verb = method.split(".")
    with connect(url, timeout=60) as client, pytest.raises(SmapiError) as info:
        getattr(getattr(client, iface), verb)(dbg="hostile", **args)
    assert not isinstance(info.value, Internal_error), f"{method} over {url}: {info.value}"
    return info.value


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_corpus_over_rpc_servers(attached, servers, protocol):
    before = attached.arena.outside()
    for bad in attached.arena.hostile_names():
        if protocol == "xmlrpc" and bad in XML_UNSENDABLE:
            continue
        for method, args in (("VDI.stat", {"sr": attached.sr, "vdi": bad}),
                             ("VDI.destroy", {"sr": attached.sr, "vdi": bad}),
                             ("VDI.resize", {"sr": attached.sr, "vdi": bad, "new_size": 1 << 21}),
                             ("SR.stat", {"sr": bad}),
                             ("SR.attach", {"sr": bad, "device_config": attached.device_config})):
            err = _refused_over(servers[protocol], method, **args)
            assert isinstance(err, Invalid_argument), (method, repr(bad)[:40], err)
    assert attached.arena.outside() == before


def test_corpus_over_per_verb_executables(attached, servers):
    before = attached.arena.outside()
    for bad in PROCESS_SUBSET + ("a\x00b", str(attached.arena.canary / "f")):
        for verb, args in (("VDI.destroy", {"sr": attached.sr, "vdi": bad}), ("SR.stat", {"sr": bad})):
            proc = subprocess.run([str(servers["plugin"] / verb), "--json"], capture_output=True, text=True,
                                  timeout=60, input=json.dumps({"dbg": "hostile", **args}) + "\n")
            assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            failure = json.loads(proc.stdout)
            assert failure["params"][0] == "Invalid_argument", failure
    assert attached.arena.outside() == before


def _classic(command: str, **keys: Any) -> subprocess.CompletedProcess:
    struct = {"host_ref": "OpaqueRef:h", "command": command, "args": [], **keys}
    return subprocess.run([sys.executable, str(REPO / "bin" / "FileSR"), xmlrpc.client.dumps((struct,), command)],
                          capture_output=True, text=True, timeout=60, env=os.environ.copy())


def test_corpus_over_the_classic_executable(attached):
    before = attached.arena.outside()
    dc = {**attached.device_config, "SRmaster": "true"}
    for bad in PROCESS_SUBSET[:5]:
        for command, keys in (("vdi_delete", {"sr_uuid": attached.sr, "vdi_uuid": bad}),
                              ("sr_scan", {"sr_uuid": bad})):
            proc = _classic(command, device_config=dc, **keys)
            assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
            if not bad:
                # The classic request checker refuses an empty uuid itself.
                with pytest.raises(xmlrpc.client.Fault) as fault:
                    xmlrpc.client.loads(proc.stdout)
                assert fault.value.faultCode == CLASSIC_CODES["InvalidArg"][0]
                continue
            with pytest.raises(xmlrpc.client.Fault) as fault:
                xmlrpc.client.loads(proc.stdout)
            assert fault.value.faultCode == CLASSIC_CODES["InvalidArg"][0], fault.value.faultString
    assert attached.arena.outside() == before


@pytest.mark.parametrize("body", [
    "<methodCall><methodName>sr_scan</methodName><params><param><value><struct><member><value>x</value></member>"
    "</struct></value></param></params></methodCall>",
    "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member>"
    "<member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>",
    "<methodCall><methodName>sr_scan</methodName><params><param><value><foo>1</foo></value></param></params>"
    "</methodCall>",
])
def test_structurally_wrong_classic_call_is_143(body):
    proc = subprocess.run([sys.executable, str(REPO / "bin" / "FileSR"), body], capture_output=True, text=True,
                          timeout=60)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(proc.stdout)
    assert fault.value.faultCode == CLASSIC_CODES["BadRequest"][0], fault.value.faultString


def test_corpus_over_the_cli(attached):
    before = attached.arena.outside()
    runner = CliRunner()
    for bad in attached.arena.hostile_names():
        if "\x00" in bad:
            continue  # no argv can hold NUL
        for argv in (["vdi-stat", "--driver", "file", "--sr", attached.sr, "--", bad],
                     ["vdi-destroy", "--driver", "file", "--sr", attached.sr, "--", bad],
                     ["sr-stat", "--driver", "file", "--", bad]):
            result = runner.invoke(cli, argv)
            assert result.exit_code == 1, (argv[:1], repr(bad)[:40], result.output[-500:])
            assert "Invalid_argument" in result.output and "Traceback" not in result.output, result.output[-500:]
    assert attached.arena.outside() == before
