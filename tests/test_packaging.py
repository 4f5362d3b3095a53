"""What the installed package declares: every driver name resolves, one version source, a licence file."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

import smapi
from smapi.driver import Driver, load_driver

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["file", "nfs", "lvm", "iscsi"])
def test_every_shipped_driver_is_registered_by_name(name):
    driver = load_driver(name)
    assert isinstance(driver, Driver)
    assert driver.name == name


def test_the_installed_version_is_the_one_in_the_package():
    assert metadata.version("smapi") == smapi.__version__


def test_the_licence_file_matches_the_declared_licence():
    declared = metadata.metadata("smapi")["License"]
    assert declared == "LGPL-2.1-or-later"
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (REPO / "LICENSE").read_text()
    assert "Version 2.1" in (REPO / "LICENSE").read_text()
