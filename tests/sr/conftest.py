"""Fixtures of the engine tests: a created and attached file SR with its run directory in tmp_path."""

from __future__ import annotations

import os

import pytest

from tests.sr.drivers import file_sr_factory
from tests.sr.helpers import FileSR


@pytest.fixture
def env(tmp_path, monkeypatch):
    sut = file_sr_factory(tmp_path)
    for key, value in sut.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMAPI_FAULT", raising=False)
    yield sut
    sut.cleanup()


@pytest.fixture
def fsr(env) -> FileSR:
    sr = FileSR(env.device_config["path"])
    sr.create_sr()
    sr.attach()
    return sr


@pytest.fixture
def fresh_run_dir(tmp_path, monkeypatch):
    """Switch to an empty run directory: what a rebooted or different host sees."""
    def switch(name: str) -> str:
        path = os.fspath(tmp_path / name)
        os.makedirs(path, exist_ok=True)
        monkeypatch.setenv("SMAPI_RUN_DIR", path)
        return path
    return switch
