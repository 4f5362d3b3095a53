"""When the garbage collector runs: `SMAPI_GC=sync|background|off`, else device_config `gc`, else background.

Background collection is a detached process (`python -m smapi.sr.background <sr>`) that finds the SR through the
host's run directory, so it works the same after a per-verb executable, a classic call or a server request has
returned. At most one collector runs per SR and at most one more waits behind it (the `gc-queue` lock); the
waiting one catches whatever the running one might miss.

`sync` collects inside the verb, after it committed; a failure there is logged, not raised (the verb did happen),
and an explicit collection (`engine.gc()`, `sr-gc`) reports it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import List, Optional

from smapi.common import commands
from smapi.interface.errors import SmapiError
from smapi.sr.engine import Engine

ENV = "SMAPI_GC"
MODES = ("sync", "background", "off")

log = logging.getLogger(__name__)


def gc_mode(engine: Engine) -> str:
    mode = os.environ.get(ENV) or engine.device_config.get("gc") or "background"
    return mode if mode in MODES else "background"


def schedule_gc(engine: Engine) -> None:
    mode = gc_mode(engine)
    if mode == "off":
        return
    if mode == "sync":
        try:
            engine.gc_without_waiting()
        except SmapiError as e:
            # The verb that asked has committed: failing it now would tell its caller the change did not happen.
            # Whatever this run left (a journal, a chain still to merge) the next collector finishes or reports.
            log.warning("SR %s: garbage collection after the change failed, left to the next run: %s",
                        engine.sr, e)
        return
    if not engine.driver_ref:
        return  # an engine not reached through an attached SR has nothing to re-open in another process
    # Detached (a session of its own), so it outlives the verb; cwd kept, as `-m` finds smapi through it.
    commands.spawn([sys.executable, "-m", "smapi.sr.background", engine.sr], cwd=None)


def main(argv: Optional[List[str]] = None) -> int:
    from smapi.core.driver import load_driver

    args = sys.argv[1:] if argv is None else argv
    sr = args[0]
    from smapi.sr.runstate import RunState

    record = RunState().attached(sr)
    if record is None:
        return 0  # detached meanwhile: nothing to do
    driver = load_driver(record["driver"])
    engine = driver.engine_for(sr)  # type: ignore[attr-defined]
    queue = engine.substrate.lock("gc-queue")
    if not queue.acquire(timeout=0):
        return 0  # one collector is already waiting to run after the current one
    try:
        lock = engine.gc_lock()
        lock.acquire(timeout=None)
    finally:
        queue.release()
    try:
        engine.gc()
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
