"""Hostile names and values, called in-process through the dispatcher (hypothesis plus the mutation corpus).

For every SR- or VDI-naming argument and every stored text: the answer is a typed error that names the argument
(never Internal_error), and nothing outside the SR and the run directory is created, changed or removed.
"""

from __future__ import annotations

from typing import Any, Dict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smapi.interface.errors import Internal_error, Invalid_argument, SmapiError
from smapi.sr.names import is_name
from tests.hostile.arena import NAME_CORPUS, TEXT_CORPUS
from tests.hostile.verbs import sr_calls, text_calls, vdi_calls

#: arbitrary text, weighted towards what escapes paths
hostile_text = st.one_of(
    st.sampled_from(NAME_CORPUS),
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("./\\\x00ab-_ \n"), max_size=30),
    st.builds(lambda a, b: a + "/" + b, st.text(max_size=8), st.text(max_size=8)),
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def refused(attached: Any, method: str, args: Dict[str, Any]) -> SmapiError:
    with pytest.raises(SmapiError) as info:
        attached.call(method, **args)
    err = info.value
    assert not isinstance(err, Internal_error), f"{method} {args!r:.200}: {err}"
    return err


def assert_contained(attached: Any, before: Any) -> None:
    assert attached.arena.outside() == before, "files outside the SR were created, changed or removed"


@pytest.mark.parametrize("case", range(len(NAME_CORPUS) + 3))
def test_corpus_sr_names_refused_as_invalid_argument(attached, case):
    bad = attached.arena.hostile_names()[case]
    before = attached.arena.outside()
    for method, args in sr_calls(bad, attached.device_config, attached.vdi):
        err = refused(attached, method, args)
        assert isinstance(err, Invalid_argument) and err.params[0] == "sr", (method, err)
    assert_contained(attached, before)


@pytest.mark.parametrize("case", range(len(NAME_CORPUS) + 3))
def test_corpus_vdi_names_refused_as_invalid_argument(attached, case):
    bad = attached.arena.hostile_names()[case]
    before = attached.arena.outside()
    for method, args in vdi_calls(attached.sr, bad):
        err = refused(attached, method, args)
        assert isinstance(err, Invalid_argument) and err.params[0].startswith("vdi"), (method, err)
    assert_contained(attached, before)
    assert attached.call("VDI.stat", sr=attached.sr, vdi=attached.vdi)["name_label"] == "known"


@pytest.mark.parametrize("bad", TEXT_CORPUS)
def test_text_xml_cannot_carry_is_refused_when_set(attached, bad):
    for method, args in text_calls(attached.sr, attached.vdi, bad):
        err = refused(attached, method, args)
        assert isinstance(err, Invalid_argument), (method, err)
    # Nothing was stored: the SR still scans, and every name in it is plain.
    assert [v["name_label"] for v in attached.call("SR.scan", sr=attached.sr)] == ["known"]


@SETTINGS
@given(bad=hostile_text)
def test_any_vdi_name_is_typed_and_contained(attached, bad):
    before = attached.arena.outside()
    for method, args in vdi_calls(attached.sr, bad):
        err = refused(attached, method, args)
        if not is_name(bad):
            assert isinstance(err, Invalid_argument), (method, err)
    assert_contained(attached, before)


@SETTINGS
@given(bad=hostile_text)
def test_any_sr_name_is_typed_and_contained(attached, bad):
    before = attached.arena.outside()
    for method, args in sr_calls(bad, attached.device_config, attached.vdi):
        if is_name(bad) and method in ("SR.create", "SR.attach"):
            continue  # a well-formed new uuid: creating or attaching it is allowed (and tested elsewhere)
        err = refused(attached, method, args)
        if not is_name(bad):
            assert isinstance(err, Invalid_argument), (method, err)
    assert_contained(attached, before)


def test_corpus_copy_destination_refused(attached):
    before = attached.arena.outside()
    for bad in attached.arena.hostile_names():
        err = refused(attached, "VDI.copy", {"sr": attached.sr, "vdi": attached.vdi, "url": "http://x", "dest": bad})
        assert isinstance(err, Invalid_argument) and err.params[0] == "dest", err
    assert_contained(attached, before)
