"""Several comma-separated portals in `target`: tried in order at attach and probe; errors name every portal."""

from __future__ import annotations

import os
import time

import pytest

from smapi.drivers.iscsi.config import parse_portals
from smapi.drivers.iscsi.initiator import read_state
from smapi.drivers.iscsi.libiscsi import Portal
from smapi.interface.classic_codes import CLASSIC_CODES
from smapi.interface.errors import Backend_error
from tests.iscsi.conftest import GiB, IscsiClient, MiB, Targets
from tests.iscsi.tgt import free_port


def test_portals_parse_in_order_without_duplicates() -> None:
    config = {"target": "10.0.0.5, [fd00::1]:3263,10.0.0.5:3260,host.example", "port": "3260"}
    assert parse_portals(config) == (Portal("10.0.0.5", 3260), Portal("fd00::1", 3263), Portal("host.example", 3260))


def test_a_dead_portal_first_then_a_live_one(targets: Targets) -> None:
    t = targets.add([(1, GiB)])
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: refused at once
    live = targets.server.portal
    sr = IscsiClient({"target": f"{dead},{live}", "targetIQN": t.iqn, "LUNid": "1"})

    kind, xml = sr.probe(target=f"{dead},{live}")
    assert kind == "Raw" and t.iqn in xml
    kind, xml = sr.probe(target=f"{dead},{live}", targetIQN=t.iqn)
    assert kind == "Raw" and "<LUNid>1</LUNid>" in xml

    sr.create()
    sr.attach()
    assert read_state(sr.session_dir())["target"] == live  # the portal that logged in is the one in use
    vdi = sr.vdi(8 * MiB)
    data = os.urandom(MiB)
    sr.write(vdi, MiB, data)
    assert sr.read(vdi, MiB, MiB) == data  # the per-verb path check follows the live portal, not the first one
    sr.detach()


def test_every_portal_failing_names_each_of_them(targets: Targets) -> None:
    t = targets.add([(1, GiB)], chap=("portaluser", "PortalSecret12"))
    dead1, dead2 = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(Backend_error) as err:
        IscsiClient({"target": f"{dead1},{dead2}", "targetIQN": t.iqn, "LUNid": "1"}).attach()
    assert err.value.classic_code == CLASSIC_CODES["ISCSITarget"][0]
    assert dead1 in err.value.message() and dead2 in err.value.message(), err.value.message()
    assert time.monotonic() - start < 10

    # one portal answers but refuses the login: its error (the actionable one) gives the code, both are named
    live = targets.server.portal
    with pytest.raises(Backend_error) as err:
        IscsiClient({"target": f"{dead1},{live}", "targetIQN": t.iqn, "LUNid": "1", "chapuser": "portaluser",
                     "chappassword": "WrongSecret123"}).attach()
    assert err.value.classic_code == CLASSIC_CODES["ISCSILogin"][0], err.value.message()
    assert dead1 in err.value.message() and live in err.value.message()
    sessions = os.path.join(os.environ["SMAPI_RUN_DIR"], "iscsi")
    assert not os.path.isdir(sessions) or not os.listdir(sessions)  # a failed attach leaves no session
