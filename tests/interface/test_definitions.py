"""The definitions cover the seeds, and everything derived from them is fresh and behaves."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from smapi.interface import codegen, docgen
from smapi.interface.apis import all_apis, get_api
from smapi.interface.classic import COMMANDS
from smapi.interface.errors import Unimplemented

REPO = Path(__file__).resolve().parents[2]


def test_storage_interface_has_every_seed_verb():
    api = get_api("storage")
    expected = {
        "Query": {"query", "diagnostics"},
        "VDI": {"create", "snapshot", "clone", "destroy", "stat", "set_persistent", "epoch_begin", "epoch_end",
                "attach", "activate", "deactivate", "detach", "copy", "get_url", "get_by_name", "set_content_id",
                "compose", "similar_content"},
        "SR": {"ls", "create", "attach", "detach", "destroy", "reset", "scan"},
    }
    for iface, verbs in expected.items():
        assert verbs <= {m.name for m in api.interface(iface).methods}


def test_v3_and_plugin_and_transfer_verbs():
    v3 = get_api("v3")
    assert {m.name for m in v3.interface("Plugin").methods} == {"query", "ls", "diagnostics"}
    plugin_query = v3.interface("Plugin").method("query").result.type
    assert "required_cluster_stack" in {f.name for f in plugin_query.fields}
    assert {m.name for m in v3.interface("Datapath").methods} >= {"open", "attach", "activate", "deactivate",
                                                                   "detach", "close"}
    assert {m.name for m in get_api("transfer").interface("Transfer").methods} == {
        "cleanup", "expose", "expose_forest", "get_import_instructions", "get_record",
        "number_of_ip_addresses_needed", "prepare_transfer_vm_template", "save_logs", "unexpose"}
    assert {"sr_get_driver_info", "sr_create", "vdi_create", "vdi_compose"} <= set(COMMANDS)
    assert len(COMMANDS["vdi_create"].args) == 8


def test_lookup_is_case_insensitive_like_xapi_storage_script():
    assert get_api("v3").lookup("Plugin.Query")[1].name == "query"
    assert get_api("v3").lookup("Volume.nope") is None


def _all_skeletons():
    import importlib

    for api in all_apis():
        module = importlib.import_module(f"smapi.interface.skeletons.{api.name}")
        for iface in api.interfaces:
            yield api, iface, getattr(module, iface.skeleton_name)


@pytest.mark.parametrize("api,iface,cls", list(_all_skeletons()),
                         ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_every_skeleton_verb_raises_unimplemented_naming_itself(api, iface, cls):
    impl = cls()
    for m in iface.methods:
        fn = getattr(impl, m.name)
        params = list(inspect.signature(fn).parameters)
        assert params == [p.name for p in m.params], f"{iface.name}.{m.name} signature differs"
        with pytest.raises(Unimplemented) as e:
            fn(*[p.type.example() for p in m.params])
        assert e.value.params == (f"{iface.name}.{m.name}",)


def test_generated_skeletons_are_fresh():
    for path, text in codegen.expected_files().items():
        assert path.read_text() == text, f"{path} is stale: run python -m smapi.interface.codegen"
    assert codegen.stale_files() == [], "generated files no definition makes: run python -m smapi.interface.codegen"


def test_generated_reference_is_fresh():
    current = (REPO / "docs" / "interface.md").read_text()
    assert current == docgen.render(), "docs/interface.md is stale: run make docs"


def test_reference_documents_every_verb():
    text = docgen.render()
    for api in all_apis():
        for name in api.wire_names():
            assert f"`{name}`" in text
    for name in COMMANDS:
        assert f"`{name}`" in text
