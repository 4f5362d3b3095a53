"""The example driver answers identically in process, over XML-RPC and over JSON-RPC (Unix socket and TCP)."""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from smapi.core.dispatcher import Dispatcher
from smapi.interface.errors import SmapiError
from smapi.rpc.client import Client, connect

TIB = 2**40


def _outcome(fn: Callable[[], Any]) -> Tuple[Any, ...]:
    try:
        return ("ok", fn())
    except SmapiError as e:
        return ("error", type(e).__name__, list(e.params))


def scenario(call: Callable[[str, dict], Any], sr_path: str) -> List[Tuple[Any, ...]]:
    """The same sequence of calls, through `call(wire_name, args)`; VDI ids replaced by a placeholder."""
    sr = "sr-" + sr_path
    cfg = {"path": sr_path}
    out: List[Tuple[Any, ...]] = []
    created: dict = {}

    def step(wire: str, **args: Any) -> Any:
        result = _outcome(lambda: call(wire, args))
        out.append((wire, *result))
        return result

    step("Query.query", dbg="t")
    step("SR.create", dbg="t", sr=sr, device_config=cfg, physical_size=4 * TIB)
    step("SR.attach", dbg="t", sr=sr, device_config=cfg)
    step("SR.scan", dbg="t", sr=sr)
    res = step("VDI.create", dbg="t", sr=sr, vdi_info={"virtual_size": 2 * TIB + 1, "name_label": "disk"})
    if res[0] == "ok":
        created = res[1]
    vdi = created.get("vdi", "?")
    step("VDI.stat", dbg="t", sr=sr, vdi=vdi)
    step("SR.scan", dbg="t", sr=sr)
    step("VDI.snapshot", dbg="t", sr=sr, vdi_info={"vdi": vdi, "virtual_size": 0})  # Unimplemented
    step("VDI.stat", dbg="t", sr=sr, vdi="no-such-vdi")  # Vdi_does_not_exist
    step("VDI.stat", dbg="t", sr=sr)  # missing argument
    step("VDI.create", dbg="t", sr=sr, vdi_info={"virtual_size": "huge"})  # wrongly typed
    step("SR.create", dbg="t", sr=sr, device_config=cfg, physical_size=True)  # bool is not int64
    step("Volume.frobnicate", dbg="t")  # not a storage-interface method
    step("VDI.destroy", dbg="t", sr=sr, vdi=vdi)
    step("VDI.destroy", dbg="t", sr=sr, vdi=vdi)
    step("SR.detach", dbg="t", sr=sr)
    step("SR.scan", dbg="t", sr=sr)  # Sr_not_attached
    return _normalise(out, vdi, sr)


def _normalise(value: Any, vdi: str, sr: str) -> Any:
    if isinstance(value, str):
        return value.replace(vdi, "<vdi>").replace(sr, "<sr>") if vdi != "?" else value.replace(sr, "<sr>")
    if isinstance(value, dict):
        return {k: _normalise(v, vdi, sr) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_normalise(v, vdi, sr) for v in value)
    return value


def test_same_answers_in_process_and_over_every_transport(dirsr_dispatcher, start_server, tmp_path):
    reference = scenario(lambda wire, args: dirsr_dispatcher.call(wire, [args]), str(tmp_path / "local"))

    transcripts = {}
    for protocol in ("xmlrpc", "jsonrpc"):
        for kind in ("unix", "tcp"):
            running = start_server(dirsr_dispatcher, protocol, kind)
            with connect(running.url, timeout=10) as client:
                transcripts[running.url] = scenario(
                    lambda wire, args, c=client: _wire_call(c, wire, args), str(tmp_path / f"{protocol}-{kind}"))

    for url, transcript in transcripts.items():
        assert transcript == reference, url

    # And the reference itself is what the scenario intends.
    by_step = [(s[0], s[1], s[2] if s[1] == "error" else None) for s in reference]
    assert by_step == [
        ("Query.query", "ok", None), ("SR.create", "ok", None), ("SR.attach", "ok", None),
        ("SR.scan", "ok", None), ("VDI.create", "ok", None), ("VDI.stat", "ok", None), ("SR.scan", "ok", None),
        ("VDI.snapshot", "error", "Unimplemented"), ("VDI.stat", "error", "Vdi_does_not_exist"),
        ("VDI.stat", "error", "Invalid_argument"), ("VDI.create", "error", "Invalid_argument"),
        ("SR.create", "error", "Invalid_argument"), ("Volume.frobnicate", "error", "Unknown_method"),
        ("VDI.destroy", "ok", None), ("VDI.destroy", "error", "Vdi_does_not_exist"), ("SR.detach", "ok", None),
        ("SR.scan", "error", "Sr_not_attached"),
    ]
    created = reference[4][2]
    assert created["virtual_size"] == 2 * TIB + 512 and isinstance(created["virtual_size"], int)
    assert reference[5][2] == created and reference[6][2] == [created]
    assert reference[9][3] == ["vdi", "missing (vdi) in VDI.stat"]
    assert reference[10][3][0] == "vdi_info.virtual_size"


def _wire_call(client: Client, wire: str, args: dict) -> Any:
    """Through the client's transport only, so the *server* checks arguments and method names."""
    found = client.api.lookup(wire)
    if found is None:
        # Any method definition will do to carry the call; the server must refuse the name.
        _, method = client.api.lookup("Query.query")
        return client.transport.call(wire, args, method)
    iface, method = found
    return Dispatcher.check_result(method, wire, client.transport.call(wire, args, method))


def test_the_client_checks_arguments_before_sending(dirsr_dispatcher):
    calls = [
        ("VDI.stat", {"dbg": "t", "sr": "s"}),
        ("VDI.create", {"dbg": "t", "sr": "s", "vdi_info": {"virtual_size": "huge"}}),
        ("SR.create", {"dbg": "t", "sr": "s", "device_config": {}, "physical_size": 1.5}),
    ]
    # Nothing listens at this address, so an answer can only come from the client itself.
    with connect("xmlrpc+unix:///nonexistent/smapi.sock") as client:
        for wire, args in calls:
            local = _outcome(lambda w=wire, a=args: client.call(w, **a))
            server = _outcome(lambda w=wire, a=args: dirsr_dispatcher.call(w, [a]))
            assert local == server and local[1] == "Invalid_argument", wire
