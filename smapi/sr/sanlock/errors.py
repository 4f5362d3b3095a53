"""sanlock failures as the typed SMAPI errors callers get, with what to do about them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from smapi.interface.errors import Backend_error
from smapi.sr.sanlock.client import SanlockError
from smapi.sr.sanlock.daemon import run_dir

_NO_DAEMON = (-2, -111)  # ENOENT / ECONNREFUSED on the daemon's socket


@contextmanager
def sanlock_errors(what: str) -> Iterator[None]:
    try:
        yield
    except SanlockError as e:
        if e.rv in _NO_DAEMON and e.call in ("register", "add_lockspace", "inq_lockspace", "get_hosts"):
            hint = "start the sanlock service, or a private one (smapi sanlock start --run-dir D; SANLOCK_RUN_DIR=D)"
            why = f"{what}: no sanlock daemon answers in {run_dir()}; {hint}"
            raise Backend_error.classic("SRUnavailable", why) from e
        raise Backend_error.classic("SRUnavailable", f"{what}: {e}") from e
    except OSError as e:
        if "libsanlock" in str(e):
            raise Backend_error.classic("SRUnavailable", f"{what}: {e}") from e
        raise
