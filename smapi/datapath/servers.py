"""The NBD server of a VDI on this host: start, stop, flush and look it up, from any process.

This is the whole of the datapath's own bookkeeping: which server runs, for whom (its `owner`, the SR engine's SR),
in which mode and on which image (`smapi.datapath.nbd` records that with the process). Who uses a VDI, on how
many datapaths and in which state, is the SR engine's business (its automaton); it starts a server when the
first datapath activates and stops it after the last one.

A server's start and stop are serialised per VDI with a flock (``<run_dir>/nbd-locks/<name>.lock``), so a
cleanup in one process never removes the files of a server another process is starting.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator, List, Optional

from . import blockdev, runtime
from .model import DatapathError, ImageSpec
from .nbd import NbdExport, NbdServer
from .nbd import cleanup_stale as _stop_every_server

LOCK_DIR = "nbd-locks"

log = logging.getLogger(__name__)


class DatapathInUse(DatapathError):
    """The VDI is served on this host for another owner (another SR with a VDI of the same uuid)."""


@contextlib.contextmanager
def _locked(run_dir: str, vdi: str) -> Iterator[None]:
    with runtime.locked(os.path.join(os.path.abspath(run_dir), LOCK_DIR, runtime.file_name(vdi) + ".lock")):
        yield


def start(vdi: str, image: ImageSpec, *, readonly: bool, owner: str, run_dir: str,
          lease: Optional[Callable[[int], None]] = None) -> NbdExport:
    """Serve ``image`` as export ``vdi`` (and ``vdi@ro``); returns once a client can connect.

    Idempotent: a running server of the same owner, mode and image is kept. One of the same owner in the other
    mode or on another image (left by a crash) is replaced. One of another owner raises :class:`DatapathInUse`;
    a server that cannot start raises :class:`DatapathError` (with nbdkit's own message). ``lease(pid)`` takes
    the leases the new server must hold (see `NbdServer.start`); whatever it raises propagates.
    """
    nbd = NbdServer(run_dir)
    with _locked(run_dir, vdi):
        ex = nbd.get(vdi)
        if ex is not None and ex.running():
            if ex.owner != owner:
                raise DatapathInUse(f"VDI {vdi!r} is served for {ex.owner or 'someone else'} on this host "
                                    f"(nbdkit pid {ex.pid})")
            if ex.readonly == readonly and ex.image == image:
                return ex
            _flush_quietly(nbd, vdi)
            nbd.stop(vdi)
        return nbd.start(vdi, image, readonly=readonly, owner=owner, lease=lease)


def stop(vdi: str, *, owner: str, run_dir: str) -> bool:
    """Flush, then stop ``owner``'s server of ``vdi`` and remove its files (the socket too); True if one ran.

    Never fails for a missing server; a server of another owner is left alone.
    """
    nbd = NbdServer(run_dir)
    with _locked(run_dir, vdi):
        ex = nbd.get(vdi)
        if ex is None or ex.owner != owner:
            return False
        _flush_quietly(nbd, vdi)
        stopped = nbd.stop(vdi)
    nbd.remove_alias()  # only once no server of the run dir is left (long run dirs only)
    return stopped


def _flush_quietly(nbd: NbdServer, vdi: str) -> None:
    """Flush before a stop, so the stop loses nothing; nbdkit's exit commits what a failed flush could not."""
    try:
        nbd.flush(vdi)
    except DatapathError as e:
        log.warning("flush of %s before stopping its server failed: %s", vdi, e)


def flush(vdi: str, *, run_dir: str) -> bool:
    """Make every write through the server durable in the image; False if none runs (or it is read-only)."""
    return NbdServer(run_dir).flush(vdi)


def server(vdi: str, *, run_dir: str) -> Optional[NbdExport]:
    """The recorded server of ``vdi`` (check ``running()``: it may have died), if any."""
    return NbdServer(run_dir).get(vdi)


def serving(vdi: str, *, owner: str, run_dir: str) -> bool:
    """True while ``owner``'s server of ``vdi`` runs."""
    ex = server(vdi, run_dir=run_dir)
    return ex is not None and ex.owner == owner and ex.running()


def served(run_dir: str, owner: Optional[str] = None) -> List[str]:
    """The VDIs with a recorded server (of ``owner`` only, when given), running or not."""
    return sorted(ex.export for ex in NbdServer(run_dir).exports() if owner is None or ex.owner == owner)


def address(vdi: str, *, run_dir: str) -> str:
    """The socket ``vdi`` is (or will be) served on: known before the server starts."""
    return NbdServer(run_dir).address(vdi)


def cleanup_stale(run_dir: str) -> List[str]:
    """Forget the servers that are not running any more (another boot's, killed ones); returns their VDIs.

    A record of another boot is dropped without signalling its pid, which may belong to another program now.
    Running servers are left alone, whoever owns them.
    """
    nbd = NbdServer(run_dir)
    cleaned = []
    for ex in nbd.exports():
        with _locked(run_dir, ex.export):
            current = nbd.get(ex.export)
            if current is not None and not current.running():
                nbd.stop(ex.export)  # removes the files; signals nothing (not running)
                cleaned.append(ex.export)
    nbd.remove_alias()
    return sorted(cleaned)


def teardown_all(run_dir: str) -> List[str]:
    """Stop every server and release every loop device recorded under ``run_dir``, whoever owns them (tests,
    a host's last resort); returns the VDIs."""
    done = _stop_every_server(run_dir)
    for vdi in blockdev.recorded(run_dir):
        blockdev.release(run_dir, vdi)
        done.append(vdi)
    return sorted(set(done))
