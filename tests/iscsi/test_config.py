"""device_config parsing and SCSI ids: pure functions, no target needed."""

from __future__ import annotations

import pytest

from smapi.drivers.iscsi.config import parse_portal, parse_target, without_secrets
from smapi.drivers.iscsi.libiscsi import Portal, parse_designators, scsi_id
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error


@pytest.mark.parametrize("config, portal", [
    ({"target": "10.0.0.5"}, Portal("10.0.0.5", 3260)),
    ({"target": "10.0.0.5", "port": "3261"}, Portal("10.0.0.5", 3261)),
    ({"target": "host.example:3262", "port": "1"}, Portal("host.example", 3262)),
    ({"target": "[fd00::1]:3263"}, Portal("fd00::1", 3263)),
    ({"target": "fd00::1", "port": "3264"}, Portal("fd00::1", 3264)),
    ({"target": "10.0.0.5,10.0.0.6"}, Portal("10.0.0.5", 3260)),
])
def test_portal(config: dict, portal: Portal) -> None:
    assert parse_portal(config) == portal


@pytest.mark.parametrize("config, name", [
    ({}, "ConfigTargetMissing"),
    ({"target": "h", "port": "0"}, "ISCSIPort"),
    ({"target": "h:70000"}, "ISCSIPort"),
    ({"target": "h", "LUNid": "1"}, "ConfigTargetIQNMissing"),
    ({"target": "h", "targetIQN": "iqn.x:y"}, "ConfigSCSIid"),
    ({"target": "h", "targetIQN": "iqn.x:y", "LUNid": "one"}, "ConfigLUNMissing"),
    ({"target": "h", "targetIQN": "iqn.x:y", "LUNid": "1", "incoming_chapuser": "a",
      "incoming_chappassword": "b"}, "ISCSILogin"),
])
def test_bad_configurations(config: dict, name: str) -> None:
    with pytest.raises(Backend_error) as err:
        parse_target(config)
    assert err.value.classic_code == CLASSIC_CODES[name][0]


def test_secrets_are_dropped() -> None:
    assert without_secrets({"target": "h", "chapuser": "u", "chappassword": "p", "incoming_chappassword": "q"}) == {
        "target": "h", "chapuser": "u"}


def _page(*designators: bytes) -> bytes:
    body = b"".join(designators)
    return bytes([0, 0x83]) + len(body).to_bytes(2, "big") + body


def _designator(code_set: int, kind: int, value: bytes, assoc: int = 0) -> bytes:
    return bytes([code_set, (assoc << 4) | kind, 0, len(value)]) + value


def test_scsi_id_prefers_naa_registered_extended_like_udev() -> None:
    page = _page(_designator(2, 1, b"IET     00010001\0\0"),
                 _designator(1, 3, bytes.fromhex("3000000100000001")),
                 _designator(1, 3, bytes.fromhex("60000000000000000e00000000010001")),
                 _designator(1, 3, bytes.fromhex("5000000000000001"), assoc=1))  # a port's id: not the LU's
    found = parse_designators(page)
    assert len(found) == 3
    assert scsi_id(found) == "360000000000000000e00000000010001"
    assert scsi_id([(1, b"IET     00010001\0\0")]) == "1IET_00010001"
    assert scsi_id([]) == ""
