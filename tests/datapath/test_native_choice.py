"""Which plugin serves an image is decided at activate time, recorded, and falls back to Python with a reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import smapi.vhd as vhd
from smapi.datapath import native
from smapi.datapath.model import ImageSpec
from smapi.datapath.nbd import NbdServer

from .nativelib import require_native


def _leaf(scratch: str) -> str:
    path = os.path.join(scratch, "a.vhd")
    vhd.create_dynamic(path, 4 << 20)
    return path


def test_native_engine_recorded(scratch, run_dir):
    require_native()
    srv = NbdServer(run_dir)
    ex = srv.start("v", ImageSpec("vhd", _leaf(scratch)), readonly=False)
    try:
        assert ex.engine["engine"] == "native" and ex.engine["plugin"].endswith(".so")
        assert srv.get("v").engine == ex.engine  # another process reads it from the record
    finally:
        srv.stop("v")


def test_env_switch_selects_python(scratch, run_dir, monkeypatch):
    monkeypatch.setenv(native.ENV_SWITCH, "python")
    srv = NbdServer(run_dir)
    ex = srv.start("v", ImageSpec("vhd", _leaf(scratch)), readonly=False)
    try:
        assert ex.engine == {"engine": "python", "reason": "SMAPI_DATAPATH=python", "plugin": None}
        with open(f"/proc/{ex.pid}/cmdline", "rb") as f:
            assert b"nbd_plugin.py" in f.read()
    finally:
        srv.stop("v")


def test_unbuilt_plugin_falls_back(scratch, run_dir, monkeypatch):
    monkeypatch.setattr(native, "plugin_path", lambda: None)
    ex = NbdServer(run_dir).start("v", ImageSpec("vhd", _leaf(scratch)), readonly=True)
    try:
        assert ex.engine["engine"] == "python" and "not built" in ex.engine["reason"]
        assert "not built" in native.diagnostics_line()
    finally:
        NbdServer(run_dir).stop("v")


def test_unmappable_opener_images_use_python():
    require_native()
    spec = ImageSpec.opened_by("vhd", "smapi.drivers.lvm.no_such_module:open_volume", {}, description="lvm://vg/lv")
    engine = native.choose(spec, shutil.which("nbdkit") or "nbdkit")
    assert engine.name == "python" and "opener failed" in engine.reason and "no_such_module" in engine.reason


def test_plugin_carries_its_sources_hash():
    plugin = require_native()
    res = subprocess.run([shutil.which("nbdkit") or "nbdkit", plugin, "--dump-plugin"], capture_output=True,
                         text=True, check=True)
    assert f"version={native.sources_hash()}" in res.stdout.splitlines()


def test_stale_build_falls_back(monkeypatch):
    """Sources changed since the build (a rebuild that failed leaves the old .so): Python, with the reason."""
    require_native()
    monkeypatch.setattr(native, "_loadable", {})
    monkeypatch.setattr(native, "sources_hash", lambda: "0123456789abcdef")
    engine = native.availability(shutil.which("nbdkit") or "nbdkit")
    assert engine.name == "python" and "stale" in engine.reason and "0123456789abcdef" in engine.reason


def test_broken_chain_fails_the_start(scratch, run_dir):
    require_native()
    leaf = _leaf(scratch)
    child = os.path.join(scratch, "b.vhd")
    vhd.snapshot(leaf, child)
    os.unlink(leaf)
    with pytest.raises(Exception, match="parent"):
        NbdServer(run_dir).start("v", ImageSpec("vhd", child), readonly=False)

