"""SRs under test: a pytest-free factory per driver, shared with the conformance suite.

Each factory returns an :class:`SRUnderTest`: which driver to load, the `device_config` that reaches a fresh SR
inside `tmp_path`, and the environment the driver must run under (its host-local run directory and GC mode live
in `tmp_path` too, so tests never touch /run/smapi nor leave a background collector behind).
"""

from __future__ import annotations

import os
from typing import Callable, Dict

# the SR-under-test record and the file SR's factory ship with the package, for vendors' tests too
from smapi.testing.sut import SRUnderTest, file_sr_factory

__all__ = ["FACTORIES", "SRUnderTest", "file_sr_factory"]


#: every SR type the conformance suite should run against, by name
FACTORIES: Dict[str, Callable[[str | os.PathLike[str]], SRUnderTest]] = {"file": file_sr_factory}


def _register_nfs() -> None:
    """NFS SRs (`tests/nfs/factory.py`: v3 in a private netns, v4.1 on loopback) join where ganesha can run."""
    from tests.nfs.factory import NFS_FACTORIES, nfs_unavailable

    if nfs_unavailable() is None:
        FACTORIES.update(NFS_FACTORIES)


def _register_lvm() -> None:
    """LVM SRs, thick and thin (`tests/lvm/factory.py`: a VG on a loop device over a sparse file), where lvm2 and
    loop devices are usable (root)."""
    from tests.lvm.factory import lvm_available, lvm_sr_factory, lvm_thin_sr_factory

    if lvm_available() == "":
        FACTORIES.update({"lvm": lvm_sr_factory, "lvm-thin": lvm_thin_sr_factory})


def _register_iscsi() -> None:
    """iSCSI SRs (`tests/iscsi/factory.py`: LVM on a LUN of a real tgtd on 127.0.0.1, userspace initiator) where
    tgtd, qemu-storage-daemon, FUSE and loop devices are usable."""
    from tests.iscsi.factory import ISCSI_FACTORIES, iscsi_unavailable

    if iscsi_unavailable() is None:
        FACTORIES.update(ISCSI_FACTORIES)


_register_nfs()
_register_lvm()
_register_iscsi()
