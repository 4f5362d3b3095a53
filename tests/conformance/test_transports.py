"""The conformance suite's tests of this topic, from smapi.testing.conformance, run on every SR type here."""

from smapi.testing.conformance.test_transports import *  # noqa: F401,F403
