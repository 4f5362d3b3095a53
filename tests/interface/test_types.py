"""The type language: checking and normalising values as they arrive from any transport."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smapi.interface.storage import attach_info, sr_health, vdi_info
from smapi.interface.types import BOOL, INT64, STRING, STRING_MAP, ListOf, Tuple_, TypeCheckError
from smapi.interface.v3 import implementation


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int64_accepts_numbers_and_untyped_xmlrpc_strings(n):
    assert INT64.check(n, "x") == n
    assert INT64.check(str(n), "x") == n


@pytest.mark.parametrize("bad", [True, 1.5, "12a", "", None, 2**63, [1]])
def test_int64_rejects(bad):
    with pytest.raises(TypeCheckError) as e:
        INT64.check(bad, "vdi_info.virtual_size")
    assert e.value.where == "vdi_info.virtual_size"


def test_bool_and_string_are_strict():
    assert BOOL.check(False, "b") is False
    for bad in ("true", 1, None):
        with pytest.raises(TypeCheckError):
            BOOL.check(bad, "b")
    with pytest.raises(TypeCheckError):
        STRING.check(5, "s")


def test_string_map_accepts_struct_or_association_list():
    assert STRING_MAP.check({"a": "b"}, "m") == {"a": "b"}
    assert STRING_MAP.check([["a", "b"]], "m") == {"a": "b"}
    with pytest.raises(TypeCheckError) as e:
        STRING_MAP.check({"a": 1}, "device_config")
    assert "device_config['a']" in str(e.value)


def test_record_fills_defaults_and_names_missing_members():
    v = vdi_info.check({"virtual_size": "4096"}, "vdi_info")
    assert v["virtual_size"] == 4096 and v["persistent"] is True and v["sm_config"] == {}
    assert len(v) == 14
    with pytest.raises(TypeCheckError) as e:
        vdi_info.check({"name_label": "x"}, "vdi_info")
    assert e.value.where == "vdi_info.virtual_size"
    with pytest.raises(TypeCheckError) as e:
        vdi_info.check({"virtual_size": 1, "read_only": "no"}, "vdi_info")
    assert e.value.where == "vdi_info.read_only"


def test_record_drops_members_newer_toolstacks_add():
    v = vdi_info.check({"virtual_size": 1, "cbt_enabled": True}, "vdi_info")
    assert "cbt_enabled" not in v


def test_optional_members_are_omitted_when_unset():
    assert attach_info.check({"params": "/dev/x"}, "a") == {"params": "/dev/x", "xenstore_data": {}}


def test_variants_constant_and_with_payload():
    assert sr_health.check("Healthy", "h") == "Healthy"
    assert sr_health.check(["Recovering"], "h") == "Recovering"
    with pytest.raises(TypeCheckError):
        sr_health.check("Dead", "h")
    nbd = implementation.check(["Nbd", {"uri": "nbd:unix:/s:exportname=v"}], "i")
    assert nbd == ["Nbd", {"uri": "nbd:unix:/s:exportname=v"}]
    with pytest.raises(TypeCheckError):
        implementation.check(["Nbd"], "i")
    with pytest.raises(TypeCheckError):
        implementation.check(["File", {"uri": "x"}], "i")


def test_lists_and_tuples():
    assert ListOf(INT64).check(["1", 2], "l") == [1, 2]
    with pytest.raises(TypeCheckError) as e:
        ListOf(INT64).check([1, "x"], "l")
    assert e.value.where == "l[1]"
    assert Tuple_((STRING, INT64)).check(("a", "3"), "t") == ["a", 3]
    with pytest.raises(TypeCheckError):
        Tuple_((STRING, INT64)).check(["a"], "t")
