"""Errors are values with wire names: each encodes for every transport and decodes back to its class."""

from __future__ import annotations

import pytest

from smapi.interface import errors as E
from smapi.interface.apis import all_apis


def sample(cls):
    """An instance of an error class with plausible payload values."""
    if cls is E.Backend_error:
        return cls("SR_BACKEND_FAILURE_44", ["", "There is insufficient space", ""])
    return cls(*[f"p{i}" for i in range(cls.arity())])


ALL = sorted({e for api in all_apis() for e in api.errors}, key=lambda c: c.wire_name)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.wire_name)
def test_variant_round_trip(cls):
    err = sample(cls)
    back = E.SmapiError.from_variant(err.to_variant())
    assert type(back) is cls and back.params == err.params
    assert err.message()  # a sentence for people


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.wire_name)
def test_exec_failure_round_trip(cls):
    err = sample(cls)
    code, params = err.exec_code_params()
    back = E.error_from_exec(code, params)
    assert type(back) is cls and back.params == err.params


def test_seed_encodings():
    assert E.Sr_not_attached("sr1").to_variant() == ["Sr_not_attached", "sr1"]
    assert E.Illegal_transition("Attached(RO)", "Detached").to_variant() == [
        "Illegal_transition", ["Attached(RO)", "Detached"]]
    assert E.Backend_error.classic("SnapshotChainTooLong").to_variant() == [
        "Backend_error", ["SR_BACKEND_FAILURE_109", ["", "The snapshot chain is too long", ""]]]


def test_classic_codes_follow_the_toolstack_table():
    assert E.Unimplemented("x").classic_code == 38
    assert E.Backend_error.classic("SRNoSpace", "need 4G").classic_code == 44
    assert E.Backend_error("SOMETHING", []).classic_code == 202
    assert "opterr=need 4G" in E.Backend_error.classic("SRNoSpace", "need 4G").message()


def test_wrong_payload_is_refused_at_construction():
    with pytest.raises(TypeError):
        E.Sr_not_attached()
    with pytest.raises(TypeError):
        E.Illegal_transition("a")
    with pytest.raises(TypeError):
        E.Vdi_does_not_exist(5)


def test_unknown_wire_errors_decode_as_internal_error():
    assert isinstance(E.SmapiError.from_variant(["No_such_error", "x"]), E.Internal_error)
    assert isinstance(E.SmapiError.from_variant(42), E.Internal_error)
    assert isinstance(E.error_from_exec("SR_BACKEND_FAILURE_73", ["", "NFS mount error", ""]), E.Backend_error)


def test_the_nine_storage_errors_are_defined():
    from smapi.interface.storage import STORAGE

    names = {e.wire_name for e in STORAGE.errors}
    assert {"Sr_not_attached", "Vdi_does_not_exist", "Illegal_transition", "Backend_error", "Unimplemented",
            "Does_not_exist", "Cancelled", "Redirect", "Sr_attached"} <= names
