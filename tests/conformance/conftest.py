"""The project's run of the conformance suite, which lives in the package (`smapi.testing.conformance`).

The test modules here only import the suite's tests; this conftest gives them the suite's fixtures and registers
every SR type this machine can run (`tests.sr.drivers.FACTORIES`: file, and NFS, LVM and iSCSI where their
daemons and devices are usable). `SMAPI_CONFORMANCE_DRIVERS=file,lvm` restricts the run, and
`SMAPI_CONFORMANCE_FACTORIES=name=module:factory` adds out-of-tree SR types (smapi.testing.plugin).
"""

from __future__ import annotations

from smapi.testing import plugin

# the helpers conformance tests used to import from here, for test modules written against this conftest
from smapi.testing.client import (  # noqa: F401
    EPOCH,
    MiB,
    SRClient,
    find_hook,
    new_sr_uuid,
    pattern,
    provisioned,
    sha,
)
from smapi.testing.plugin import (  # noqa: F401  (fixtures and hooks, found by pytest in this namespace)
    factory,
    pytest_configure,
    pytest_generate_tests,
    second_sr,
    sr,
    sut,
)
from smapi.testing.sut import Factory  # noqa: F401
from tests.sr.drivers import FACTORIES

plugin.register(FACTORIES)
