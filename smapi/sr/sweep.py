"""Leftovers that nothing else removes, swept at SR attach and scan: lock files of VDIs that no longer exist.
(Temporary files of document writes that died are swept by the substrate, `Substrate.sweep_temp_files`, with the
rules of `smapi.common.files.sweep_temp_files`.)

A lock file is removed only when provably unused: while holding it (`FileLock.discard`, which waiters notice).
"""

from __future__ import annotations

import os
from typing import Collection, List

from smapi.common.calllog import note
from smapi.sr.locks import FileLock
from smapi.sr.substrate import Substrate

VDI_LOCK_PREFIX = "vdi-"


def stale_vdi_locks(lock_dir: str, known: Collection[str]) -> List[str]:
    """Remove `vdi-<uuid>` lock files of VDIs not in `known` that nobody holds; returns their names."""
    try:
        names = os.listdir(lock_dir)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        if not name.startswith(VDI_LOCK_PREFIX) or name[len(VDI_LOCK_PREFIX):] in known:
            continue
        lock = FileLock(os.path.join(lock_dir, name))
        if lock.held() or not lock.acquire(timeout=0):
            continue  # in use: a later sweep gets it
        try:
            lock.discard()
            removed.append(name)
        finally:
            lock.release()
    return removed


def sweep(substrate: Substrate, known_vdis: Collection[str]) -> None:
    """Stale temporary files (every substrate), then stale VDI lock files where locks are plain host-local files."""
    from smapi.sr.directory import DirectorySubstrate

    substrate.sweep_temp_files()

    if not isinstance(substrate, DirectorySubstrate):
        return
    sample = substrate.lock("sr")
    # Plain flock files mean an SR used by this host alone; an NFS SR's locks are leases shared by hosts, which
    # expire by their own rules, and its writers' pids may be other hosts'.
    local = type(sample) is FileLock
    locks = stale_vdi_locks(os.path.dirname(sample.path), known_vdis) if local else []
    if locks:
        note(f"SR {substrate.path}: removed lock files of VDIs that no longer exist: {', '.join(locks)}")
