"""SR.probe as the discovery tool: targets, then LUNs, then SRs; classic XML, SMAPIv3 entries, classic executable."""

from __future__ import annotations

import os
import subprocess
import sys
import xmlrpc.client
from xml.dom import minidom

from smapi.core.driver import load_driver
from tests.iscsi.conftest import GiB, IscsiClient, MiB, Targets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rows(xml: str, tag: str) -> list:
    doc = minidom.parseString(xml)
    return [{c.tagName: c.firstChild.data if c.firstChild else "" for c in e.childNodes if c.nodeType == c.ELEMENT_NODE}
            for e in doc.getElementsByTagName(tag)]


def test_probe_lists_targets_then_luns_then_srs(targets: Targets) -> None:
    plain = targets.add([(1, GiB), (2, 256 * MiB)])
    chap = targets.add([(1, 512 * MiB)], chap=("prober", "ProbeSecret123"))
    client = IscsiClient(targets.config(plain, LUNid="1"))
    portal = {"target": f"127.0.0.1:{targets.server.port}"}  # the port inside `target`

    kind, xml = client.probe(**portal)
    assert kind == "Raw"
    found = {r["TargetIQN"]: r for r in _rows(xml, "TGT")}
    assert {plain.iqn, chap.iqn} <= set(found)
    assert found[plain.iqn]["IPAddress"] == "127.0.0.1" and found[plain.iqn]["Port"] == str(targets.server.port)

    kind, xml = client.probe(**portal, targetIQN=plain.iqn)
    luns = {r["LUNid"]: r for r in _rows(xml, "LUN")}
    assert set(luns) == {"1", "2"}  # LUN 0, the array controller, is no disk
    assert luns["1"]["size"] == str(GiB) and luns["2"]["size"] == str(256 * MiB)
    assert luns["1"]["vendor"] == "IET" and luns["1"]["serial"] != luns["2"]["serial"]
    assert luns["1"]["SCSIid"].startswith("36") and luns["1"]["SCSIid"] != luns["2"]["SCSIid"]

    # a LUN without SR: no SR; then create one on it and probe by SCSIid
    assert client.probe(**portal, targetIQN=plain.iqn, SCSIid=luns["1"]["SCSIid"]) == ["Probe", []]
    client.create()
    kind, entries = client.probe(**portal, targetIQN=plain.iqn, SCSIid=luns["1"]["SCSIid"])
    assert [e["sr"]["sr_uuid"] for e in entries] == [client.sr]
    assert entries[0]["complete"] and entries[0]["configuration"]["SCSIid"] == luns["1"]["SCSIid"]
    assert "chappassword" not in entries[0]["configuration"]

    # CHAP targets: their LUNs are listed with the secret only
    kind, xml = client.probe(**portal, targetIQN=chap.iqn, chapuser="prober", chappassword="ProbeSecret123")
    assert [r["size"] for r in _rows(xml, "LUN")] == [str(512 * MiB)]


def test_v3_probe_entries_lead_from_a_portal_to_the_sr(targets: Targets) -> None:
    t = targets.add([(1, GiB)])
    sr = IscsiClient(targets.config(t, LUNid="1"))
    sr.create()
    driver = load_driver("iscsi")
    v3 = driver.dispatcher("v3")

    def probe(config: dict) -> list:
        return v3.call("SR.probe", {"dbg": "t", "configuration": config})

    step1 = [e for e in probe({"target": "127.0.0.1", "port": str(targets.server.port)})
             if e["configuration"]["targetIQN"] == t.iqn]
    assert len(step1) == 1 and not step1[0]["complete"]
    step2 = probe(step1[0]["configuration"])
    assert [e["extra_info"]["LUNid"] for e in step2] == ["1"]
    assert step2[0]["extra_info"]["size"] == str(GiB) and step2[0]["extra_info"]["vendor"] == "IET"
    step3 = probe(step2[0]["configuration"])
    assert [(e["complete"], e["sr"]["uuid"]) for e in step3] == [(True, sr.sr)]
    assert step3[0]["configuration"]["sr_uuid"] == sr.sr


def test_classic_executable_answers_probe_with_xml(targets: Targets) -> None:
    t = targets.add([(1, GiB)])
    sr = IscsiClient(targets.config(t, LUNid="1"))
    sr.create()

    def classic(device_config: dict) -> str:
        call = xmlrpc.client.dumps(({"command": "sr_probe", "device_config": device_config, "args": []},),
                                   "sr_probe")
        out = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "ISCSISR"), call], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        return xmlrpc.client.loads(out)[0][0]

    iqns = [r["TargetIQN"] for r in _rows(classic({"target": "127.0.0.1", "port": str(targets.server.port)}),
                                          "TGT")]
    assert t.iqn in iqns
    srlist = classic(targets.config(t, LUNid="1"))
    assert [r["UUID"] for r in _rows(srlist, "SR")] == [sr.sr]
