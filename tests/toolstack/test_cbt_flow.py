"""Changed-block tracking as xapi-storage-script drives it: an installed plugin root, a guest writing through the
real NBD datapath (qemu-io), snapshots, and Volume.list_changed_blocks called the way the bridge calls it
(offset 0, length -1) and for an extent; Volume.compare and Volume.data_destroy; the feature advertised. Run
with each nbdkit plugin (the native C one and the Python one)."""

from __future__ import annotations

import base64
import uuid
from typing import Set

import pytest

from tests.toolstack.storage_script import StorageScript, implementation
from tests.toolstack.test_storage_script_flow import PLUGIN, host, pytestmark, qemu_io  # noqa: F401

MiB = 1024 * 1024
G = 64 * 1024


def _blocks(bitmap_b64: str) -> Set[int]:
    raw = base64.b64decode(bitmap_b64)
    return {i * 8 + j for i, b in enumerate(raw) for j in range(8) if b & (0x80 >> j)}


def _guest_writes(xss: StorageScript, uri: str, *commands: str) -> None:
    xss.datapath("smapi", "Datapath.open", dbg="t", uri=uri, persistent=True)
    backend = xss.datapath("smapi", "Datapath.attach", dbg="t", uri=uri, domain="7")
    xss.datapath("smapi", "Datapath.activate", dbg="t", uri=uri, domain="7")
    try:
        for command in commands:
            assert qemu_io(implementation(backend, "Nbd")["uri"], command).returncode == 0
    finally:
        xss.datapath("smapi", "Datapath.deactivate", dbg="t", uri=uri, domain="7")
        xss.datapath("smapi", "Datapath.detach", dbg="t", uri=uri, domain="7")
        xss.datapath("smapi", "Datapath.close", dbg="t", uri=uri)


@pytest.mark.parametrize("engine", ["native", "python"])
def test_cbt_through_the_storage_script_bridge(host, engine, monkeypatch) -> None:  # noqa: F811
    # CBT reads the writes from the leaf's sector bitmaps: both nbdkit plugins must mark only written sectors
    # (native falls back to python where it was not built)
    monkeypatch.setenv("SMAPI_DATAPATH", engine)
    xss = host["xss"]
    assert "VDI_CONFIG_CBT" in xss.volume(PLUGIN, "Plugin.Query", dbg="t")["features"]
    stored = xss.volume(PLUGIN, "SR.create", dbg="t", uuid=str(uuid.uuid4()), configuration=host["config"],
                        name="sr", description="")
    sr = xss.volume(PLUGIN, "SR.attach", dbg="t", configuration=stored)
    vol = xss.volume(PLUGIN, "Volume.create", dbg="t", sr=sr, name="d", description="", size=4 * MiB,
                     sharable=False)
    key = vol["key"]
    assert xss.volume(PLUGIN, "Volume.enable_cbt", dbg="t", sr=sr, key=key) is None
    assert xss.volume(PLUGIN, "Volume.stat", dbg="t", sr=sr, key=key)["cbt_enabled"] is True
    _, uri = xss.choose_datapath(vol["uri"])
    _guest_writes(xss, uri, "write -P 0x11 0 1M")
    s1 = xss.volume(PLUGIN, "Volume.snapshot", dbg="t", sr=sr, key=key)["key"]
    _guest_writes(xss, uri, "write -P 0x22 65536 512", "write -P 0x33 3145728 131072")  # blocks 1, 48, 49
    s2 = xss.volume(PLUGIN, "Volume.snapshot", dbg="t", sr=sr, key=key)["key"]
    whole = xss.volume(PLUGIN, "Volume.list_changed_blocks", dbg="t", sr=sr, key=s1, key2=s2, offset=0, length=-1)
    assert whole["granularity"] == G and _blocks(whole["bitmap"]) == {1, 48, 49}
    assert len(base64.b64decode(whole["bitmap"])) == 4 * MiB // G // 8
    part = xss.volume(PLUGIN, "Volume.list_changed_blocks", dbg="t", sr=sr, key=s1, key2=s2, offset=49 * G,
                      length=10)
    assert _blocks(part["bitmap"]) == {0}  # the extent's first bit is block 49
    compared = xss.volume(PLUGIN, "Volume.compare", dbg="t", sr=sr, key=s2, key2=s1)
    assert compared["blocksize"] == G and [tuple(r) for r in compared["ranges"]] == [(1, 1), (48, 2)]
    assert xss.volume(PLUGIN, "Volume.data_destroy", dbg="t", sr=sr, key=s1) is None
    again = xss.volume(PLUGIN, "Volume.list_changed_blocks", dbg="t", sr=sr, key=s1, key2=key, offset=0,
                       length=-1)
    assert _blocks(again["bitmap"]) == {1, 48, 49}
    assert xss.volume(PLUGIN, "Volume.disable_cbt", dbg="t", sr=sr, key=key) is None
    assert xss.volume(PLUGIN, "Volume.stat", dbg="t", sr=sr, key=key)["cbt_enabled"] is False
    for k in (s1, s2, key):
        xss.volume(PLUGIN, "Volume.destroy", dbg="t", sr=sr, key=k)
    xss.volume(PLUGIN, "SR.detach", dbg="t", sr=sr)
