"""smapi.testing: the SR conformance suite and the helpers to drive an SR from tests, for vendors and for smapi.

    smapi conformance --driver mysr [--config '{"path": "{tmp}/sr"}']

runs the suite against an installed driver (pytest and hypothesis are needed: `pip install 'smapi[testing]'`).
From Python, `SRClient` drives one SR through the dispatcher, and `SRUnderTest`/factories describe SRs to test;
docs/writing-a-driver.md explains both.

This package imports pytest only in its pytest-facing modules (plugin, features, the suite itself).
"""

from __future__ import annotations

from smapi.testing.client import EPOCH, HOOKS, MiB, SRClient, find_hook, lookup_hook, new_sr_uuid, pattern, sha
from smapi.testing.sut import Factory, SRUnderTest, config_factory, file_sr_factory

__all__ = ["EPOCH", "HOOKS", "MiB", "SRClient", "find_hook", "lookup_hook", "new_sr_uuid", "pattern", "sha",
           "Factory", "SRUnderTest", "config_factory", "file_sr_factory"]
