"""Leftovers that nothing else removes, swept at SR attach and scan: lock files of VDIs that no longer exist,
and temporary files of document writes that died (ENOSPC, SIGKILL) between writing and renaming.

Both are removed only when provably unused: a lock file while holding it (`FileLock.discard`, which waiters
notice), a temporary file when its writer is gone (its pid is not alive here; on a shared SR, where the pid may
be another host's, only once it is also older than a write could take) or when it is far older than any write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Collection, List

from smapi.sr.locks import FileLock

log = logging.getLogger("smapi.sr.sweep")

VDI_LOCK_PREFIX = "vdi-"
TEMP_MARK = ".tmp."
#: on a shared SR, a temporary file whose writer's pid is dead here is removed once older than this (seconds)
DEAD_WRITER_AGE = 60.0
#: any temporary file older than this is removed (a write never takes so long)
ANY_WRITER_AGE = 3600.0


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(name: str, age: float, local: bool) -> bool:
    if age > ANY_WRITER_AGE:
        return True
    pid_text = name.split(TEMP_MARK, 1)[1].split(".", 1)[0]
    return (local or age > DEAD_WRITER_AGE) and pid_text.isdigit() and not _pid_alive(int(pid_text))


def stale_temp_files(*directories: str, local: bool = True) -> List[str]:
    """Remove `<name>.tmp.<pid>...` files in `directories` whose writer is gone; returns their paths."""
    removed = []
    now = time.time()
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            if TEMP_MARK not in entry.name or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                if _writer_gone(entry.name, now - entry.stat(follow_symlinks=False).st_mtime, local):
                    os.unlink(entry.path)
                    removed.append(entry.path)
    return removed


def sweep(substrate: object, known_vdis: Collection[str]) -> None:
    """Both sweeps, on a substrate that keeps its locks and documents in directories (others have nothing)."""
    from smapi.sr.directory import JOURNAL_DIR, DirectorySubstrate

    if not isinstance(substrate, DirectorySubstrate):
        return
    sample = substrate.lock("sr")
    # Plain flock files mean an SR used by this host alone; an NFS SR's locks are leases shared by hosts, which
    # expire by their own rules, and its writers' pids may be other hosts'.
    local = type(sample) is FileLock
    locks = stale_vdi_locks(os.path.dirname(sample.path), known_vdis) if local else []
    temps = stale_temp_files(substrate.path, os.path.join(substrate.path, JOURNAL_DIR), local=local)
    if locks or temps:
        log.info("swept %d stale lock file(s) and %d temporary file(s) in %s", len(locks), len(temps),
                 substrate.path)
