"""Volume URIs of the SMAPIv3 adapter round-trip and reject what is not theirs."""

from __future__ import annotations

import pytest

from smapi.core.v3_adapter import parse_volume_uri, volume_uri
from smapi.interface.errors import Invalid_argument


def test_round_trip_with_awkward_names():
    for sr, vdi in [("s1", "v1"), ("a/b", "c d"), ("sr%x", "vdi?#")]:
        assert parse_volume_uri(volume_uri(sr, vdi)) == (sr, vdi)


@pytest.mark.parametrize("bad", ["file:///x", "smapi://", "smapi://sr", "smapi:///vdi", "nonsense"])
def test_foreign_uris_are_refused(bad):
    with pytest.raises(Invalid_argument):
        parse_volume_uri(bad)
