"""The HTTP handler of the Transfer service: the roles combined, and the verbs routed to them.

    exposure  (`smapi.transfer.exposure`)   GET/HEAD/PUT of one exposed VDI, raw and `.vhd`
    toolstack (`smapi.transfer.toolstack`)  /export_raw_vdi and /import_raw_vdi of the host's VDIs
    bits      (`smapi.transfer.bitsverbs`)  BITS upload sessions of a bits-mode exposure
    plumbing  (`smapi.transfer.httpbase`)   bodies, refusals, authentication, routing, ranges

Uploads are atomic where the protocol sends a whole body: a PUT (whole disk, `.vhd`, import) lands in the VDI only
once its body arrived complete and valid, a Content-Range PUT lands its whole range or nothing, a BITS session
lands at Close-Session (see `Disk.begin_upload`). A client that goes away mid-body leaves the VDI unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ContextManager

from smapi.sr.errors import is_no_space
from smapi.transfer import bits as B
from smapi.transfer.bitsverbs import BitsVerbs
from smapi.transfer.disk import Disk
from smapi.transfer.exposure import ExposureSite, ExposureVerbs
from smapi.transfer.formats import BaseMismatch, vhd_status
from smapi.transfer.httpbase import HttpError, OpenDisk, in_use
from smapi.transfer.ranges import RangeError
from smapi.transfer.toolstack import HostSite, ToolstackVerbs
from smapi.vhd.errors import VhdError

log = logging.getLogger("smapi.transfer.http")


class TransferHandler(ExposureVerbs, ToolstackVerbs, BitsVerbs):
    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except HttpError as e:
            self._refuse(e)
        except RangeError as e:
            self._refuse(HttpError(e.status, str(e)))
        except VhdError as e:  # a refused VHD upload or import
            self._refuse(HttpError(vhd_status(e), str(e)))
        except BaseMismatch as e:
            self._refuse(HttpError(400, str(e)))
        except B.BitsError as e:
            self._bits_error(e)
        except (ConnectionError, TimeoutError) as e:
            log.info("%s %s: connection lost: %s", self.command, self.path, e)
            self.close_connection = True
        except PermissionError as e:
            self._refuse(HttpError(403, str(e)))
        except Exception as e:  # a failure of the disk or a bug: answer, log, keep serving
            if in_use(e):  # an upload refused at commit: a VM's datapath activated the VDI meanwhile
                self._refuse(HttpError(409, str(e)))
                return
            if is_no_space(e):  # the SR is full: the upload was dropped and the VDI left as it was
                self._refuse(HttpError(507, str(e)))
                return
            log.exception("%s %s failed", self.command, self.path)
            self._refuse(HttpError(500, f"{type(e).__name__}: {e}"))

    # -- verbs ----------------------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self._authorized():
            self._run(self._get)

    def do_PUT(self) -> None:
        if self._authorized():
            self._run(self._put)

    def do_BITS_POST(self) -> None:
        self._run(self._bits)

    def do_POST(self) -> None:
        if (self.headers.get("X-Http-Method-Override") or "").upper() == "BITS_POST":
            self.do_BITS_POST()
            return
        self._refuse(HttpError(405, "POST is not served here", {"Allow": "GET, HEAD, PUT, BITS_POST"}))

    def do_DELETE(self) -> None:
        self._refuse(HttpError(405, "DELETE is not served here", {"Allow": "GET, HEAD, PUT, BITS_POST"}))

    do_OPTIONS = do_DELETE
    do_PATCH = do_DELETE

    def _get(self) -> None:
        kind, query = self._route()
        if kind in ("raw", "vhd"):
            self._get_exposure(kind, query)
        elif kind == "export":
            self._export(query)
        else:
            raise HttpError(405, "use PUT here", {"Allow": "PUT"})

    def _put(self) -> None:
        kind, query = self._route()
        if kind == "import":
            self._import(query)
        elif kind in ("raw", "vhd"):
            self._put_exposure(kind)
        else:
            raise HttpError(405, "PUT is not served here")


def serve_open_disk_factory(open_handle: Callable[[str, bool], Any]) -> OpenDisk:
    """An OpenDisk from a function returning driver data handles. The VDI is opened by the call itself, so a
    missing VDI raises there (and becomes a 404), not later inside a `with`."""

    def opener(vdi: str, writable: bool) -> ContextManager[Disk]:
        disk = Disk(open_handle(vdi, writable), writable)
        return _Closing(disk)

    return opener


class _Closing:
    def __init__(self, disk: Disk) -> None:
        self.disk = disk

    def __enter__(self) -> Disk:
        return self.disk

    def __exit__(self, *exc: Any) -> None:
        self.disk.close()


__all__ = ["ExposureSite", "HostSite", "TransferHandler", "HttpError", "serve_open_disk_factory"]
