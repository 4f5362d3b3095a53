"""VDI verbs: what each one promises, checked through the records it returns and the data the VDIs hold."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from smapi.interface.errors import Backend_error, Illegal_transition, Vdi_does_not_exist
from smapi.testing.client import EPOCH, MiB, SRClient, pattern, sha
from smapi.testing.features import needs


def _same_record(a: Dict[str, Any], b: Dict[str, Any]) -> None:
    """Records describe the same VDI state; physical_utilisation may legitimately be refreshed."""
    strip = {"physical_utilisation"}
    assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


# --- create, stat, destroy ------------------------------------------------------------------------------


@needs("open_vdi")
def test_create_rounds_up_returns_the_record_used_and_keeps_fields(sr: SRClient) -> None:
    asked = MiB + 1  # not a multiple of any sector or block size: it must be rounded up, never down
    info = sr.create(asked, name_label="disk one", name_description="a description",
                     sm_config={"conformance-key": "kept"})
    assert info["vdi"]
    assert info["virtual_size"] >= asked
    assert info["name_label"] == "disk one" and info["name_description"] == "a description"
    assert info["sm_config"].get("conformance-key") == "kept"
    assert info["is_a_snapshot"] is False and info["persistent"] is True
    # "returns the vdi_info which was used": stat and scan must agree with it
    _same_record(sr.stat(info["vdi"]), info)
    _same_record(sr.scan()[info["vdi"]], info)
    # the data the VM sees has exactly the (rounded) virtual size and a new disk reads as zeros
    data = sr.read_all(info["vdi"])
    assert len(data) == info["virtual_size"]
    assert data == bytes(len(data))
    other = sr.create(asked, name_label="disk one")
    assert other["vdi"] != info["vdi"]


@needs("open_vdi")
def test_data_written_reads_back_at_any_offset(sr: SRClient) -> None:
    vdi = sr.create(3 * MiB)["vdi"]
    expected = bytearray(sr.read_all(vdi))
    # unaligned and block-straddling writes: a VM's block front end only sends sectors, but tools do not
    for offset, length in ((0, 512), (1000, 3000), (2 * MiB - 700, 1400), (3 * MiB - 512, 512)):
        data = pattern(("w", offset), length)
        sr.write(vdi, offset, data)
        expected[offset:offset + length] = data
    assert sr.read(vdi, 1000, 3000) == bytes(expected[1000:4000])
    assert sr.read_all(vdi) == bytes(expected)
    sr.reload()  # nothing kept only in this driver instance's memory
    assert sha(sr.read_all(vdi)) == sha(bytes(expected))


def test_destroy_removes_the_vdi(sr: SRClient) -> None:
    keep = sr.create(MiB)["vdi"]
    gone = sr.create(MiB)["vdi"]
    sr.destroy(gone)
    with pytest.raises(Vdi_does_not_exist):
        sr.stat(gone)
    assert gone not in sr.scan() and keep in sr.scan()
    with pytest.raises(Vdi_does_not_exist):
        sr.destroy(gone)


# --- snapshot and clone ---------------------------------------------------------------------------------


@needs("VDI_SNAPSHOT", "open_vdi")
def test_snapshot_keeps_the_original_and_freezes_the_data(sr: SRClient) -> None:
    orig = sr.create(4 * MiB, name_label="vm disk", name_description="root")
    vdi = orig["vdi"]
    before = pattern("before", 4 * MiB)
    sr.write(vdi, 0, before)
    snap = sr.snapshot(vdi)
    assert snap["vdi"] != vdi
    assert snap["is_a_snapshot"] is True
    assert snap["snapshot_of"] == vdi
    assert snap["snapshot_time"] and snap["snapshot_time"] != EPOCH
    assert snap["virtual_size"] == orig["virtual_size"]
    _same_record(sr.stat(snap["vdi"]), snap)
    # the original keeps its identity: same key, still not a snapshot, same name
    now = sr.stat(vdi)
    assert now["is_a_snapshot"] is False and now["name_label"] == "vm disk"
    assert {vdi, snap["vdi"]} <= set(sr.scan())
    assert sr.read_all(vdi) == before and sr.read_all(snap["vdi"]) == before
    # writes to the original after the snapshot do not show through the snapshot
    sr.write(vdi, MiB + 17, b"\xee" * 5000)
    after = bytearray(before)
    after[MiB + 17:MiB + 17 + 5000] = b"\xee" * 5000
    assert sr.read_all(vdi) == bytes(after)
    assert sr.read_all(snap["vdi"]) == before


@needs("VDI_CLONE", "VDI_ATTACH", "VDI_ACTIVATE", "open_vdi")
def test_clone_is_writable_and_independent(sr: SRClient) -> None:
    vdi = sr.create(2 * MiB, name_label="golden")["vdi"]
    base = pattern("golden", 2 * MiB)
    sr.write(vdi, 0, base)
    clone = sr.clone(vdi, name_label="copy of golden")
    cid = clone["vdi"]
    assert cid != vdi and clone["is_a_snapshot"] is False and clone["read_only"] is False
    assert clone["virtual_size"] == sr.stat(vdi)["virtual_size"]
    assert sr.read_all(cid) == base
    sr.write(cid, 0, b"C" * 4096)
    sr.write(vdi, 4096, b"O" * 4096)
    assert sr.read_all(cid) == b"C" * 4096 + base[4096:]
    assert sr.read_all(vdi) == base[:4096] + b"O" * 4096 + base[8192:]
    # writable through the datapath too
    sr.v("VDI.attach", dp="clone-dp", vdi=cid, read_write=True)
    sr.v("VDI.activate", dp="clone-dp", vdi=cid)
    sr.v("VDI.deactivate", dp="clone-dp", vdi=cid)
    sr.v("VDI.detach", dp="clone-dp", vdi=cid)


@needs("VDI_SNAPSHOT", "open_vdi", "gc")
def test_destroying_a_vdi_keeps_its_snapshots_readable(sr: SRClient) -> None:
    vdi = sr.create(2 * MiB)["vdi"]
    first = pattern("first", 2 * MiB)
    sr.write(vdi, 0, first)
    s1 = sr.snapshot(vdi)["vdi"]
    sr.write(vdi, 512, b"second" * 100)
    second = sr.read_all(vdi)
    s2 = sr.snapshot(vdi)["vdi"]
    sr.write(vdi, 0, b"third" * 1000)
    sr.destroy(vdi)
    assert vdi not in sr.scan()
    assert sr.read_all(s1) == first and sr.read_all(s2) == second
    sr.gc()  # the destroyed leaf's chain is now garbage or coalesceable; snapshots must not care
    assert sr.read_all(s1) == first and sr.read_all(s2) == second


# --- persistence and epochs -----------------------------------------------------------------------------


@needs("VDI_RESET_ON_BOOT", "open_vdi")
def test_non_persistent_vdi_is_reset_at_epoch_begin(sr: SRClient) -> None:
    vdi = sr.create(2 * MiB)["vdi"]
    golden = pattern("golden", 2 * MiB)
    sr.write(vdi, 0, golden)
    sr.v("VDI.set_persistent", vdi=vdi, persistent=False)
    assert sr.stat(vdi)["persistent"] is False
    sr.v("VDI.epoch_begin", vdi=vdi)  # a VM boots
    sr.write(vdi, 0, b"scribble" * 1024)
    sr.write(vdi, MiB, b"more" * 1024)
    sr.v("VDI.epoch_end", vdi=vdi)  # ... and shuts down
    sr.v("VDI.epoch_begin", vdi=vdi)  # next boot: the VM's writes are gone
    assert sr.read_all(vdi) == golden
    # the reset happens every epoch, not once
    sr.write(vdi, 4096, b"again" * 100)
    sr.v("VDI.epoch_end", vdi=vdi)
    sr.v("VDI.epoch_begin", vdi=vdi)
    assert sr.read_all(vdi) == golden


@needs("open_vdi")
def test_persistent_vdi_keeps_writes_across_epochs(sr: SRClient) -> None:
    vdi = sr.create(2 * MiB)["vdi"]
    sr.v("VDI.set_persistent", vdi=vdi, persistent=False)
    sr.v("VDI.set_persistent", vdi=vdi, persistent=True)
    assert sr.stat(vdi)["persistent"] is True
    sr.v("VDI.epoch_begin", vdi=vdi)
    data = pattern("kept", 2 * MiB)
    sr.write(vdi, 0, data)
    sr.v("VDI.epoch_end", vdi=vdi)
    sr.v("VDI.epoch_begin", vdi=vdi)
    assert sr.read_all(vdi) == data
    sr.v("VDI.epoch_end", vdi=vdi)
    assert sr.read_all(vdi) == data


# --- the datapath state automaton ------------------------------------------------------------------------


@needs("VDI_ATTACH", "VDI_ACTIVATE")
def test_activate_before_attach_is_illegal(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    with pytest.raises(Illegal_transition):
        sr.v("VDI.activate", dp="dp1", vdi=vdi)


@needs("VDI_ATTACH", "VDI_ACTIVATE")
def test_attach_activate_deactivate_detach_with_idempotent_repeats(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    # Detach / deactivate of a detached VDI are no-ops in the automaton (the toolstack retries them freely).
    sr.v("VDI.deactivate", dp="dp1", vdi=vdi)
    sr.v("VDI.detach", dp="dp1", vdi=vdi)
    device = sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)
    assert isinstance(device["params"], str) and device["params"], "attach must say how to reach the disk"
    sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)  # same mode again: allowed
    sr.v("VDI.deactivate", dp="dp1", vdi=vdi)  # deactivate while only attached: allowed, stays attached
    sr.v("VDI.activate", dp="dp1", vdi=vdi)
    sr.v("VDI.activate", dp="dp1", vdi=vdi)
    with pytest.raises(Illegal_transition):
        sr.v("VDI.detach", dp="dp1", vdi=vdi)  # detach while active
    sr.v("VDI.deactivate", dp="dp1", vdi=vdi)
    sr.v("VDI.deactivate", dp="dp1", vdi=vdi)
    sr.v("VDI.detach", dp="dp1", vdi=vdi)
    sr.v("VDI.detach", dp="dp1", vdi=vdi)
    # back to Detached: activating now is illegal again, which proves the detach really happened
    with pytest.raises(Illegal_transition):
        sr.v("VDI.activate", dp="dp1", vdi=vdi)


@needs("VDI_ATTACH")
def test_read_only_then_read_write_is_illegal(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    sr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)
    with pytest.raises(Illegal_transition):
        sr.v("VDI.attach", dp="writer", vdi=vdi, read_write=True)
    with pytest.raises(Illegal_transition):
        sr.v("VDI.attach", dp="reader", vdi=vdi, read_write=True)
    # the refused attach left no trace: once the reader goes, a writer may attach
    sr.v("VDI.detach", dp="reader", vdi=vdi)
    sr.v("VDI.attach", dp="writer", vdi=vdi, read_write=True)
    sr.v("VDI.detach", dp="writer", vdi=vdi)


@needs("VDI_ATTACH", "VDI_ACTIVATE")
def test_read_write_then_read_only_is_allowed(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    sr.v("VDI.attach", dp="writer", vdi=vdi, read_write=True)
    sr.v("VDI.attach", dp="reader", vdi=vdi, read_write=False)
    sr.v("VDI.activate", dp="writer", vdi=vdi)
    sr.v("VDI.activate", dp="reader", vdi=vdi)
    # one dp's state is its own: the reader may go while the writer stays active
    sr.v("VDI.deactivate", dp="reader", vdi=vdi)
    sr.v("VDI.detach", dp="reader", vdi=vdi)
    with pytest.raises(Illegal_transition):
        sr.v("VDI.detach", dp="writer", vdi=vdi)
    sr.v("VDI.deactivate", dp="writer", vdi=vdi)
    sr.v("VDI.detach", dp="writer", vdi=vdi)


@needs("VDI_ATTACH", "VDI_ACTIVATE")
def test_datapath_state_is_shared_between_driver_instances(sr: SRClient) -> None:
    """Each per-verb call is a new process: the automaton's state must not live in one instance's memory."""
    vdi = sr.create(MiB)["vdi"]
    sr.v("VDI.attach", dp="dp1", vdi=vdi, read_write=True)
    sr.v("VDI.activate", dp="dp1", vdi=vdi)
    sr.reload()
    with pytest.raises(Illegal_transition):
        sr.v("VDI.detach", dp="dp1", vdi=vdi)
    sr.v("VDI.deactivate", dp="dp1", vdi=vdi)
    sr.reload()
    sr.v("VDI.detach", dp="dp1", vdi=vdi)


# --- copy, url, names, content ids ---------------------------------------------------------------------


@needs("open_vdi")
def test_copy_to_another_sr_on_the_same_host(sr: SRClient, second_sr: SRClient) -> None:
    src = sr.create(3 * MiB, name_label="to copy")["vdi"]
    sr.write(src, 0, pattern("copy-a", MiB))
    sr.write(src, 2 * MiB + 100, pattern("copy-b", 5000))  # leave a hole in the middle
    source_data = sr.read_all(src)
    url = sr.v("VDI.get_url", vdi=src)
    new = sr.v("VDI.copy", vdi=src, url=url, dest=second_sr.sr)
    assert isinstance(new, str) and new
    assert new in second_sr.scan()
    info = second_sr.stat(new)
    assert info["virtual_size"] == sr.stat(src)["virtual_size"]
    assert second_sr.read_all(new) == source_data
    # the copy is independent of its source
    second_sr.write(new, 0, b"x" * 512)
    assert sr.read_all(src) == source_data


def test_get_url_names_the_vdi(sr: SRClient) -> None:
    a = sr.create(MiB)["vdi"]
    b = sr.create(MiB)["vdi"]
    url_a = sr.v("VDI.get_url", vdi=a)
    assert isinstance(url_a, str) and url_a
    assert sr.v("VDI.get_url", vdi=a) == url_a
    assert sr.v("VDI.get_url", vdi=b) != url_a


def test_get_by_name(sr: SRClient) -> None:
    sr.create(MiB, name_label="decoy")
    wanted = sr.create(MiB, name_label="the one")
    found = sr.v("VDI.get_by_name", name="the one")
    assert found["vdi"] == wanted["vdi"]
    _same_record(found, sr.stat(wanted["vdi"]))


def test_set_content_id(sr: SRClient) -> None:
    vdi = sr.create(MiB)["vdi"]
    other = sr.create(MiB)["vdi"]
    sr.v("VDI.set_content_id", vdi=vdi, content_id="content-123")
    assert sr.stat(vdi)["content_id"] == "content-123"
    assert sr.stat(other)["content_id"] != "content-123"
    sr.reload()
    assert sr.scan()[vdi]["content_id"] == "content-123"


# --- compose, similar_content, resize ------------------------------------------------------------------


@needs("VDI_COMPOSE", "open_vdi", "gc")
def test_compose_layers_vdi2_updates_onto_vdi1(sr: SRClient) -> None:
    size = 2 * MiB
    vdi1 = sr.create(size)["vdi"]
    base = pattern("vdi1", size)
    sr.write(vdi1, 0, base)
    vdi2 = sr.create(size)["vdi"]
    own = {4096: pattern("own-a", 8192), MiB + 512: pattern("own-b", 1024)}  # sector-aligned updates
    for offset, data in own.items():
        sr.write(vdi2, offset, data)
    expected = bytearray(base)
    for offset, data in own.items():
        expected[offset:offset + len(data)] = data
    sr.v("VDI.compose", vdi1=vdi1, vdi2=vdi2)
    assert sr.read_all(vdi2) == bytes(expected)
    assert vdi2 in sr.scan()
    sr.gc()
    assert sr.read_all(vdi2) == bytes(expected)


@needs("VDI_SNAPSHOT", "VDI_CLONE", "open_vdi")
def test_similar_content_lists_related_vdis_first(sr: SRClient) -> None:
    unrelated = [sr.create(MiB)["vdi"] for _ in range(2)]
    vdi = sr.create(MiB)["vdi"]
    sr.write(vdi, 0, pattern("family", MiB))
    older = sr.snapshot(vdi)["vdi"]
    clone = sr.clone(vdi)["vdi"]
    sr.write(vdi, 0, pattern("rewritten", MiB // 2))  # half of the VDI now differs from `older`
    newer = sr.snapshot(vdi)["vdi"]  # identical to the VDI as it is now
    unrelated.append(sr.create(MiB)["vdi"])
    listed = [info["vdi"] for info in sr.v("VDI.similar_content", vdi=vdi)]
    related = {older, clone, newer}
    assert vdi not in listed, "a VDI is not 'similar' to itself"
    assert related <= set(listed), f"snapshots and clone of the VDI must be listed: {listed}"
    last_related = max(listed.index(r) for r in related)
    assert all(listed.index(u) > last_related for u in unrelated if u in listed), listed
    # "most similar first": the snapshot of the current contents before the one of older contents
    assert listed.index(newer) < listed.index(older), listed


@needs("VDI_RESIZE", "VDI_SNAPSHOT", "open_vdi")
def test_resize_grows_keeps_data_and_new_space_reads_zero(sr: SRClient) -> None:
    info = sr.create(2 * MiB)
    vdi, old = info["vdi"], info["virtual_size"]
    data = pattern("resize", old)
    sr.write(vdi, 0, data)
    snap = sr.snapshot(vdi)["vdi"]  # a chain below the leaf must survive the resize too
    asked = 5 * MiB + 3
    new = sr.resize(vdi, asked)
    assert new >= asked
    assert sr.stat(vdi)["virtual_size"] == new
    after = sr.read_all(vdi)
    assert len(after) == new
    assert after[:old] == data and after[old:] == bytes(new - old)
    sr.write(vdi, new - 512, b"T" * 512)  # the new space is really usable
    assert sr.read(vdi, new - 512, 512) == b"T" * 512
    assert sr.read_all(snap) == data and sr.stat(snap)["virtual_size"] == old


@needs("VDI_RESIZE", "open_vdi")
def test_resize_refuses_to_shrink(sr: SRClient) -> None:
    info = sr.create(4 * MiB)
    vdi = info["vdi"]
    data = pattern("noshrink", info["virtual_size"])
    sr.write(vdi, 0, data)
    with pytest.raises(Backend_error):
        sr.resize(vdi, MiB)
    assert sr.stat(vdi)["virtual_size"] == info["virtual_size"]
    assert sr.read_all(vdi) == data


# --- names and sm_config ---------------------------------------------------------------------------------


def test_set_name_label_and_description(sr: SRClient) -> None:
    vdi = sr.create(MiB, name_label="old", name_description="old text")["vdi"]
    other = sr.create(MiB, name_label="other")["vdi"]
    sr.v("VDI.set_name_label", vdi=vdi, new_name_label="new name")
    sr.v("VDI.set_name_description", vdi=vdi, new_name_description="new text")
    sr.reload()
    info = sr.stat(vdi)
    assert (info["name_label"], info["name_description"]) == ("new name", "new text")
    assert sr.stat(other)["name_label"] == "other"
    assert sr.v("VDI.get_by_name", name="new name")["vdi"] == vdi


def test_add_and_remove_sm_config_keys(sr: SRClient) -> None:
    vdi = sr.create(MiB, sm_config={"given": "at create"})["vdi"]
    sr.v("VDI.add_to_sm_config", vdi=vdi, key="added", value="later")
    sr.reload()
    config = sr.stat(vdi)["sm_config"]
    assert config.get("given") == "at create" and config.get("added") == "later"
    sr.v("VDI.remove_from_sm_config", vdi=vdi, key="given")
    config = sr.stat(vdi)["sm_config"]
    assert "given" not in config and config.get("added") == "later"
