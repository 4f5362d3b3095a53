"""The exposure server process: `python -m smapi.transfer.daemon <record handle>`.

`Transfer.expose` writes the exposure's state file and starts this process in its own session, so the exposure
outlives the call (a per-verb executable or host plugin exits at once). The process opens the VDI through its
driver (holding the VDI's lock, exclusive unless read-only, until it exits), serves it over HTTP/BITS or iSCSI,
marks the state "exposed" with the port it bound, and then runs until:

* SIGTERM (unexpose): clean shutdown, exit 0;
* `timeout_minutes` after the last connection ended: state "timedout", clean shutdown; `cleanup` removes it.

`SMAPI_TRANSFER_MINUTE` (seconds, default 60) scales the timeout's minute: tests use a fraction of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, Optional

from smapi.transfer.state import Exposure

log = logging.getLogger("smapi.transfer.daemon")


def minute_seconds() -> float:
    try:
        return float(os.environ.get("SMAPI_TRANSFER_MINUTE", "60"))
    except ValueError:
        return 60.0


class IdleWatch:
    """Calls `expire` once `idle()` (seconds without any connection, None while one is open) reaches `limit`."""

    def __init__(self, limit: float, idle: Callable[[], Optional[float]], expire: Callable[[], None]) -> None:
        self.limit = limit
        self.idle = idle
        self.expire = expire

    def run(self, stop: threading.Event) -> None:
        tick = max(0.05, min(1.0, self.limit / 20))
        while not stop.wait(tick):
            idle = self.idle()
            if idle is not None and idle >= self.limit:
                log.info("no connection for %.1f s: timing out", idle)
                self.expire()
                return


def _setup_logging(path: str) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _base_opener() -> Callable[[str, bool], Any]:
    from smapi.transfer.handlers import serve_open_disk_factory
    from smapi.transfer.locate import find_vdi, open_data

    return serve_open_disk_factory(lambda vdi, writable: open_data(find_vdi(vdi), writable))


@contextlib.contextmanager
def _http_service(e: Exposure, disk: Any) -> Iterator[Callable[[], Optional[float]]]:
    from smapi.transfer.auth import Authenticator, Credentials
    from smapi.transfer.handlers import ExposureSite, TransferHandler
    from smapi.transfer.httpserve import TransferServer
    from smapi.transfer.tls import server_context

    auth = Authenticator(Credentials(e.username, e.password), allow_basic=e.use_ssl)
    site = ExposureSite(disk, e.vdi_uuid, e.transfer_mode, auth, _base_opener())
    ctx = server_context(e.cert_path, e.key_path) if e.use_ssl else None
    server = TransferServer((e.ip, e.port), TransferHandler, site, ssl_context=ctx)
    e.port = server.port
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    try:
        yield server.activity.idle_for
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def _iscsi_service(e: Exposure, disk: Any) -> Iterator[Callable[[], Optional[float]]]:
    from smapi.transfer.iscsi import IscsiExport

    export = IscsiExport(e, disk)
    export.start()
    try:
        yield export.idle_for
    finally:
        export.stop()


def run(handle: str) -> int:
    e = Exposure.load(handle)
    if e is None:
        print(f"no exposure {handle}", file=sys.stderr)
        return 1
    _setup_logging(e.log_path)
    e.pid = os.getpid()
    e.save()  # before anything can fail: cleanup and unexpose find the process by this pid
    stop = threading.Event()
    reason = {"value": "unexpose"}

    def on_term(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    disk = None
    try:
        from smapi.transfer.disk import Disk
        from smapi.transfer.locate import LocatedVdi, open_data

        located = LocatedVdi(e.sr, e.vdi_uuid, e.driver_ref, {})
        disk = Disk(open_data(located, writable=not e.read_only), writable=not e.read_only)
        service = _iscsi_service if e.transfer_mode == "iscsi" else _http_service
        with service(e, disk) as idle_for:
            e.status = "exposed"
            e.pid = os.getpid()
            e.save()
            log.info("exposed VDI %s (%s) on %s:%s", e.vdi_uuid, e.transfer_mode, e.ip, e.port)
            watcher = None
            if e.timeout_minutes:
                def expire() -> None:
                    reason["value"] = "timedout"
                    stop.set()

                watch = IdleWatch(e.timeout_minutes * minute_seconds(), idle_for, expire)
                watcher = threading.Thread(target=watch.run, args=(stop,), name="idle", daemon=True)
                watcher.start()
            while not stop.wait(1.0):
                pass
            log.info("stopping: %s", reason["value"])
    except BaseException as exc:  # report why the exposure could not start, then exit non-zero
        log.exception("exposure failed")
        e.status = "failed"
        e.error = f"{type(exc).__name__}: {exc}"
        e.save()
        return 1
    finally:
        if disk is not None:
            with contextlib.suppress(Exception):
                disk.flush()
            with contextlib.suppress(Exception):
                disk.close()
    if reason["value"] == "timedout":
        e.status = "timedout"
        e.save()
    return 0


def main(argv: Optional[list] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m smapi.transfer.daemon <record handle>", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
