"""Every error the storage interface documents, raised typed, for the reason it documents, with no damage done.

The verb lists come from the interface definition itself, so a verb added there is covered here.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

from smapi.interface.apis import get_api
from smapi.interface.errors import (
    Backend_error,
    Does_not_exist,
    Invalid_argument,
    Sr_not_attached,
    Vdi_does_not_exist,
)
from smapi.interface.model import Method
from smapi.testing.client import MiB, SRClient, new_sr_uuid, pattern
from smapi.testing.features import missing, needs, verb_needs

VDI_METHODS: List[Method] = list(get_api("storage").interface("VDI").methods)


def _verbs(sr: SRClient, methods: List[Method]) -> List[Method]:
    """The verbs of `methods` this driver serves (VDI.snapshot needs VDI_SNAPSHOT...); the others it may refuse."""
    return [m for m in methods if not missing(sr.sut.driver_spec, verb_needs(m.name))]


def _check_each(methods: List[Method], check: Callable[[Method], None]) -> None:
    """`check` every verb on one SR, then fail once naming every verb that failed and how.

    One SR for all verbs, not one per verb: making an SR is most of each check's cost (a shared SR joins its
    sanlock lockspace, ~3 s), and every check also proves that the verbs before it left the SR as it was."""
    failures = []
    for method in methods:
        try:
            check(method)
        except (Exception, pytest.fail.Exception) as e:  # noqa: BLE001 - reported per verb below
            failures.append(f"VDI.{method.name}: {type(e).__name__}: {e}")
    assert methods, "no verb to check"
    assert not failures, "\n".join(failures)


def _args(method: Method, sr: str, vdi: str, other_sr: str) -> Dict[str, Any]:
    """Well-typed arguments for any VDI verb, naming `vdi` wherever a VDI is expected."""
    by_name: Dict[str, Any] = {
        "dbg": "conformance", "sr": sr, "vdi": vdi, "vdi1": vdi, "vdi2": vdi, "dp": "dp-err",
        "vdi_info": {"vdi": vdi, "virtual_size": MiB}, "read_write": True, "persistent": True, "url": "",
        "dest": other_sr, "name": "no such name", "content_id": "cid", "new_size": 2 * MiB,
        "new_name_label": "renamed", "new_name_description": "redescribed", "key": "k", "value": "v",
        "vdi_from": vdi, "vdi_tp": vdi,
    }
    missing = [p.name for p in method.params if p.name not in by_name]
    assert not missing, f"VDI.{method.name} has parameters this test does not know how to fill: {missing}"
    return {p.name: by_name[p.name] for p in method.params}


@needs("open_vdi")
def test_every_vdi_verb_on_an_unattached_sr_is_sr_not_attached(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    sr.write(vdi, 0, b"untouched")

    def check(method: Method) -> None:
        stranger = new_sr_uuid()  # never attached anywhere
        with pytest.raises(Sr_not_attached) as e:
            sr.call(f"VDI.{method.name}", **_args(method, stranger, vdi, sr.sr))
        assert e.value.params == (stranger,)
        assert sr.read(vdi, 0, 9) == b"untouched" and set(sr.scan()) == {vdi}

    _check_each(_verbs(sr, VDI_METHODS), check)


def test_vdi_verbs_after_sr_detach_are_sr_not_attached(sr: SRClient) -> None:
    made: List[str] = []

    def check(method: Method) -> None:
        made.append(sr.create(MiB)["vdi"])
        sr.detach()
        sr.reload()
        try:
            with pytest.raises(Sr_not_attached):
                sr.call(f"VDI.{method.name}", **_args(method, sr.sr, made[-1], sr.sr))
        finally:
            sr.attach()
        assert set(sr.scan()) == set(made)

    _check_each(_verbs(sr, [m for m in VDI_METHODS if m.name in ("stat", "create", "destroy", "snapshot")]), check)


@needs("open_vdi")
def test_every_verb_naming_a_missing_vdi_is_vdi_does_not_exist(sr: SRClient, second_sr: SRClient) -> None:
    keep = sr.create(MiB)["vdi"]
    sr.write(keep, 0, pattern("keep", MiB))
    missing_vdi = "no-such-vdi-0000"

    def check(method: Method) -> None:
        with pytest.raises(Vdi_does_not_exist):
            sr.call(f"VDI.{method.name}", **_args(method, sr.sr, missing_vdi, second_sr.sr))
        assert set(sr.scan()) == {keep} and second_sr.scan() == {}
        assert sr.read_all(keep) == pattern("keep", MiB)

    _check_each(_verbs(sr, [m for m in VDI_METHODS if "Vdi_does_not_exist" in m.errors]), check)


@needs("VDI_COMPOSE", "open_vdi")
@pytest.mark.parametrize("which", ["vdi1", "vdi2"])
def test_compose_with_one_missing_vdi_is_vdi_does_not_exist(sr: SRClient, which: str) -> None:
    real = sr.create(MiB)["vdi"]
    sr.write(real, 0, b"compose")
    args = {"vdi1": real, "vdi2": real, which: "no-such-vdi-0001"}
    with pytest.raises(Vdi_does_not_exist):
        sr.v("VDI.compose", **args)
    assert sr.read(real, 0, 7) == b"compose"


def test_get_by_name_of_an_absent_name_is_does_not_exist(sr: SRClient) -> None:
    sr.create(MiB, name_label="present")
    with pytest.raises(Does_not_exist):
        sr.v("VDI.get_by_name", name="absent")


@pytest.mark.parametrize("verb, args, where", [
    ("VDI.create", {"vdi_info": {"virtual_size": "big"}}, "virtual_size"),
    ("VDI.create", {"vdi_info": {"name_label": "no size"}}, "virtual_size"),
    ("VDI.create", {"vdi_info": {"virtual_size": MiB, "sm_config": {"k": 1}}}, "sm_config"),
    ("VDI.stat", {"vdi": 42}, "vdi"),
    ("VDI.attach", {"dp": "d", "vdi": "v", "read_write": "yes"}, "read_write"),
    ("VDI.resize", {"vdi": "v", "new_size": "huge"}, "new_size"),
    ("VDI.set_persistent", {"vdi": "v"}, "persistent"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_badly_typed_arguments_are_invalid_argument(sr: SRClient, verb: str, args: Dict[str, Any],
                                                    where: str) -> None:
    before = sr.scan()
    with pytest.raises(Invalid_argument) as e:
        sr.v(verb, **args)
    assert where in e.value.params[0]
    assert sr.scan() == before


def test_bad_sr_argument_type_is_invalid_argument(sr: SRClient) -> None:
    with pytest.raises(Invalid_argument) as e:
        sr.call("SR.scan", sr=["not", "a", "string"])
    assert "sr" in e.value.params[0]


@needs("VDI_SNAPSHOT", "open_vdi", "gc")
def test_snapshot_chain_too_long_is_backend_error_109_and_breaks_nothing(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    expected: Dict[str, bytes] = {}
    error = None
    for depth in range(40):
        data = pattern(("depth", depth), 4096)
        sr.write(vdi, depth * 4096, data)  # each layer holds something only it has
        try:
            snap = sr.snapshot(vdi)["vdi"]
        except Backend_error as e:
            error = e
            break
        expected[snap] = sr.read(vdi, 0, 40 * 4096)
    assert error is not None, "40 snapshots of one VDI without a chain-length error"
    assert error.code == "SR_BACKEND_FAILURE_109", error
    assert 25 <= len(expected) <= 31, f"the limit is the classic chain depth of 30, hit after {len(expected)}"
    # nothing broken: no half-made snapshot, every snapshot and the leaf read as before, the leaf is writable
    leaf_now = sr.read(vdi, 0, 40 * 4096)
    assert set(sr.scan()) == {vdi, *expected}
    for snap, data in expected.items():
        assert sr.read(snap, 0, 40 * 4096) == data
    sr.write(vdi, MiB - 4096, b"still writable".ljust(4096, b"."))
    assert sr.read(vdi, 0, 40 * 4096) == leaf_now
    with pytest.raises(Backend_error):
        sr.snapshot(vdi)  # still too long: the refusal is stable, not a one-off
    # destroying the snapshots and collecting garbage shortens the chain: snapshots work again
    for snap in expected:
        sr.destroy(snap)
    sr.gc()
    again = sr.snapshot(vdi)["vdi"]
    assert sr.read(again, 0, 40 * 4096) == leaf_now


@pytest.mark.parametrize("verb, args", [
    pytest.param("VDI.create", {"vdi_info": {"virtual_size": -1}}, id="create-negative-size"),
    pytest.param("VDI.resize", {"new_size": -5 * MiB}, id="resize-negative-size", marks=needs("VDI_RESIZE")),
])
def test_well_typed_nonsense_is_a_backend_error_not_an_internal_error(
        sr: SRClient, verb: str, args: Dict[str, Any]) -> None:
    vdi = sr.create(MiB)["vdi"]
    with pytest.raises(Backend_error):
        sr.v(verb, **({"vdi": vdi, **args} if verb == "VDI.resize" else args))
    assert set(sr.scan()) == {vdi} and sr.stat(vdi)["virtual_size"] >= MiB
