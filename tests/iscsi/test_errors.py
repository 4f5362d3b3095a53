"""Every way of not reaching the LUN is a typed error naming the problem, and it comes back within seconds."""

from __future__ import annotations

import socket
import time
from typing import Callable, Dict

import pytest

from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error
from tests.iscsi.conftest import IscsiClient, MiB, Targets

#: what "within a bounded time" means here: the portal answers at once, so seconds are plenty
BOUND = 5.0


def _fails(fn: Callable[[], object], name: str, *words: str) -> Backend_error:
    start = time.monotonic()
    with pytest.raises(Backend_error) as err:
        fn()
    took = time.monotonic() - start
    assert err.value.classic_code == CLASSIC_CODES[name][0], err.value.message()
    for word in words:
        assert word in err.value.message(), err.value.message()
    assert took < BOUND, f"{name} took {took:.1f}s"
    return err.value


@pytest.fixture
def chap_target(targets: Targets) -> Dict[str, str]:
    t = targets.add([(1, 64 * MiB)], chap=("erruser", "RightSecret123"), outgoing=("tgtuser", "TargetSecret12"))
    return targets.config(t, LUNid="1", chapuser="erruser", chappassword="RightSecret123")


def test_wrong_chap_secret_is_a_login_error(chap_target: Dict[str, str]) -> None:
    bad = IscsiClient({**chap_target, "chappassword": "WrongSecret123"})
    _fails(bad.attach, "ISCSILogin", "Authentication failure", "chappassword")
    _fails(bad.create, "ISCSILogin", "Authentication failure")
    _fails(lambda: bad.probe(**{k: bad.device_config[k] for k in ("target", "port", "targetIQN", "chapuser",
                                                                     "chappassword")}), "ISCSILogin")
    _fails(IscsiClient({k: v for k, v in chap_target.items() if not k.startswith("chap")}).attach, "ISCSILogin")


def test_mutual_chap_checks_the_targets_secret(chap_target: Dict[str, str]) -> None:
    good = IscsiClient({**chap_target, "incoming_chapuser": "tgtuser", "incoming_chappassword": "TargetSecret12"})
    good.create()
    good.attach()
    good.detach()
    impostor = IscsiClient({**good.device_config, "incoming_chappassword": "NotTheTarget1"}, sr=good.sr)
    _fails(impostor.attach, "ISCSILogin")


def test_unknown_iqn(targets: Targets) -> None:
    t = targets.add([(1, 64 * MiB)])
    sr = IscsiClient({**targets.config(t, LUNid="1"), "targetIQN": t.iqn + "-missing"})
    _fails(sr.attach, "ISCSIIQN", t.iqn + "-missing", "Target not found")
    _fails(lambda: sr.probe(target="127.0.0.1", port=str(targets.server.port), targetIQN=sr.device_config[
        "targetIQN"]), "ISCSIIQN")


def test_missing_lun(targets: Targets) -> None:
    t = targets.add([(1, 64 * MiB)])
    _fails(IscsiClient(targets.config(t, LUNid="7")).attach, "ConfigLUNMissing", "no LUN 7", "LUN 1")
    _fails(IscsiClient(targets.config(t, SCSIid="36000000000000000deadbeef")).create, "ConfigSCSIid",
           "36000000000000000deadbeef")
    _fails(IscsiClient(targets.config(t)).attach, "ConfigSCSIid", "SR.probe")


def test_unreachable_portal() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sr = IscsiClient({"target": "127.0.0.1", "port": str(port), "targetIQN": "iqn.2026-11.x:y", "LUNid": "1"})
    _fails(sr.attach, "ISCSITarget", f"127.0.0.1:{port}")
    _fails(lambda: sr.probe(target=f"127.0.0.1:{port}"), "ISCSITarget")
    _fails(lambda: sr.probe(target="no-such-host.invalid"), "ISCSITarget", "no-such-host.invalid")


def test_bad_configuration_is_named() -> None:
    _fails(IscsiClient({"targetIQN": "iqn.x:y"}).attach, "ConfigTargetMissing")
    _fails(IscsiClient({"target": "127.0.0.1", "port": "x"}).attach, "ISCSIPort")
    _fails(IscsiClient({"target": "127.0.0.1", "LUNid": "1"}).attach, "ConfigTargetIQNMissing")
    _fails(IscsiClient({"target": "127.0.0.1", "targetIQN": "iqn.x:y", "LUNid": "1", "chapuser": "u"}).attach,
           "ISCSILogin", "chappassword")
