"""`smapi serve` as people run it, and the exact bytes the two executable transports print."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

from smapi.interface.errors import Unimplemented, Vdi_does_not_exist
from smapi.rpc import classic, executable
from smapi.rpc.client import connect
from tests.conftest import EXAMPLE_DRIVER

REPO = Path(__file__).resolve().parents[2]


def test_smapi_serve_command(tmp_path, example_state):
    sock = tmp_path / "serve.sock"
    proc = subprocess.Popen([sys.executable, "-m", "smapi.cli.main", "serve", "--driver", EXAMPLE_DRIVER, "--unix",
                             str(sock), "--protocol", "jsonrpc"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        client = connect(f"jsonrpc+unix://{sock}")
        assert client.Query.query(dbg="t")["driver"] == "dirsr"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not sock.exists(), "the socket file must be removed at exit"


def test_serve_refuses_remote_bind_without_flag(example_state):
    p = subprocess.run([sys.executable, "-m", "smapi.cli.main", "serve", "--driver", EXAMPLE_DRIVER, "--port", "0",
                        "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "error:" in p.stderr


# Golden bytes: what xapi reads from a classic executable's stdout.
GOLDEN_NIL = ("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><nil/></value></param>\n"
              "</params>\n</methodResponse>\n")
GOLDEN_VDI = ("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n<member>\n"
              "<name>uuid</name>\n<value><string>u1</string></value>\n</member>\n<member>\n<name>location</name>\n"
              "<value><string>u1</string></value>\n</member>\n</struct></value>\n</param>\n</params>\n"
              "</methodResponse>\n")
GOLDEN_FAULT_38 = ("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n"
                   "<name>faultCode</name>\n<value><int>38</int></value>\n</member>\n<member>\n"
                   "<name>faultString</name>\n<value><string>VDI.clone is not implemented by this driver</string>"
                   "</value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n")


def test_classic_golden_bytes():
    assert classic.value_response(None) == GOLDEN_NIL
    assert classic.value_response({"uuid": "u1", "location": "u1"}) == GOLDEN_VDI
    err = Unimplemented("VDI.clone")
    assert classic.fault_response(err.classic_code, err.message()) == GOLDEN_FAULT_38
    assert xmlrpc.client.loads(GOLDEN_VDI)[0][0] == {"uuid": "u1", "location": "u1"}


def test_per_verb_golden_bytes(tmp_path, example_state):
    import io

    out, err = io.StringIO(), io.StringIO()
    rc = executable.run(EXAMPLE_DRIVER, "storage", ["VDI.stat", "--json"],
                        io.StringIO('{"dbg": "d", "sr": "nope", "vdi": "v"}\n'), out, err)
    assert rc == 1
    failure = json.loads(out.getvalue())
    assert out.getvalue().startswith('{"code": "SR_BACKEND_FAILURE", "params": ["Sr_not_attached", "nope"], '
                                      '"backtrace": {"error": "Sr_not_attached: SR nope is not attached')
    assert failure["backtrace"]["files"] and len(failure["backtrace"]["files"]) == len(failure["backtrace"]["lines"])
    out = io.StringIO()
    rc = executable.run(EXAMPLE_DRIVER, "v3", ["Plugin.Query", "--json"], io.StringIO('{"dbg": "d"}\n'), out, err)
    assert rc == 0 and out.getvalue() == json.dumps(json.loads(out.getvalue())) + "\n"
    assert Vdi_does_not_exist("v").exec_code_params() == ("SR_BACKEND_FAILURE", ["Vdi_does_not_exist", "v"])
