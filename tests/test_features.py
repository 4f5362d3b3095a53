"""Every driver advertises exactly the features it implements, in Query.query (SMAPIv2) and Plugin.Query (v3).

A feature stands for verbs (`smapi.interface.features`); a driver implements a verb when its implementation
class overrides the generated skeleton's method. Drivers derive their lists from that (`Driver.features`); the
ones that write their list out for cold start (`declared_features`) are held to the derived list here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from smapi.core.driver import Driver, load_driver
from smapi.interface.features import STORAGE_FEATURES, V3_FEATURES, features_of, v3_names
from smapi.interface.skeletons.storage import Query_skeleton, SR_skeleton, VDI_skeleton

REPO = Path(__file__).resolve().parent.parent
DRIVERS = ["file", "nfs", "lvm", "iscsi", "smapi.examples.dirsr:DirSR"]
UPSTREAM_PLUGIN = REPO / "tests" / "toolstack" / "upstream_plugin"


def _id(spec: str) -> str:
    return spec.rsplit("/", 1)[-1]


@pytest.mark.parametrize("spec", DRIVERS, ids=_id)
def test_query_advertises_exactly_the_implemented_features(spec: str) -> None:
    driver = load_driver(spec)
    derived = driver.derived_features()
    assert driver.call("storage", "Query.query", dbg="features")["features"] == derived
    # SMAPIv3: the same features, deletion spelt VDI_DESTROY
    assert driver.call("v3", "Plugin.query", dbg="features")["features"] == v3_names(derived)


@pytest.mark.parametrize("spec", DRIVERS, ids=_id)
def test_every_table_feature_is_backed_by_verbs_the_driver_implements(spec: str) -> None:
    driver = load_driver(spec)
    implemented = set(driver.implemented_verbs("storage"))
    for feature in driver.features():
        if feature in driver.extra_features:
            continue
        assert feature in STORAGE_FEATURES, f"{spec}: {feature} is neither in the table nor an extra feature"
        assert set(STORAGE_FEATURES[feature]) <= implemented, f"{spec} advertises {feature} without its verbs"


def test_written_out_features_equal_the_derived_ones() -> None:
    declared = [load_driver(s) for s in DRIVERS if load_driver(s).declared_features is not None]
    assert declared, "the file driver writes its features out (cold start)"
    for driver in declared:
        assert list(driver.declared_features or ()) == driver.derived_features(), driver.name


def test_the_example_does_not_claim_sr_delete_without_sr_destroy() -> None:
    features = load_driver(DRIVERS[-1]).features()
    assert "SR_DELETE" not in features and {"SR_CREATE", "VDI_DELETE"} <= set(features)


class _Query(Query_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        return {}


class _SR(SR_skeleton):
    def attach(self, dbg: str, sr: str, device_config: Dict[str, str]) -> None:
        return None


class _Snapshots(VDI_skeleton):
    def snapshot(self, dbg: str, sr: str, vdi_info: Any) -> Any:
        return vdi_info


class _SnapshotsAndStat(_Snapshots):
    def stat(self, dbg: str, sr: str, vdi: str) -> Any:
        return {}


class _Partial(Driver):
    name = "partial"
    storage = {"Query": _Query, "SR": _SR, "VDI": _Snapshots}


class _Inherited(Driver):
    name = "inherited"
    storage = {"Query": _Query, "SR": _SR, "VDI": _SnapshotsAndStat}
    extra_features = ("SR_CACHING",)


def test_a_feature_needs_all_of_its_verbs_and_inherited_ones_count() -> None:
    # VDI_SNAPSHOT needs VDI.stat too (the classic vdi_snapshot stats the VDI first); skeleton stubs never count.
    assert _Partial().features() == ["SR_ATTACH"]
    assert _Partial().implemented_verbs("storage") == ["Query.query", "VDI.snapshot", "SR.attach"]
    assert _Inherited().features() == ["SR_ATTACH", "VDI_SNAPSHOT", "VDI_UPDATE", "SR_CACHING"]
    assert features_of(STORAGE_FEATURES, []) == []


def test_the_file_driver_answers_query_without_importing_the_engine() -> None:
    """Its list is written out so that a per-verb executable answering Plugin.Query stays cheap."""
    code = ("import sys, json; from smapi.core.driver import load_driver; "
            "d = load_driver('smapi.drivers.file:FileDriver'); q = d.call('v3', 'Plugin.query', dbg='t'); "
            "print(json.dumps([q['features'], 'smapi.sr.engine' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    features, engine_loaded = json.loads(out.stdout)
    assert features and not engine_loaded


def test_the_upstream_binding_plugin_advertises_its_scripts() -> None:
    """The plugin written against xen-api's bindings: its Plugin.Query names one feature per script present, as
    xapi-storage-script would derive them."""
    scripts = [p.name for p in UPSTREAM_PLUGIN.iterdir() if "." in p.name and not p.name.endswith(".py")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, str(UPSTREAM_PLUGIN / "Plugin.Query"), "--json"], input='{"dbg": "t"}',
                         capture_output=True, text=True, check=True, env=env)
    assert set(json.loads(out.stdout)["features"]) == set(features_of(V3_FEATURES, scripts))
