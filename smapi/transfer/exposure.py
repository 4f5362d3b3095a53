"""The verbs of one exposure: its disk under `/vdi_uuid_<vdi>` (raw) and `/vdi_uuid_<vdi>.vhd` (the VHD view).

    GET/HEAD <url_path>        the raw disk; single Range -> 206 + Content-Range, past the end -> 416
    PUT      <url_path>        (http mode) whole disk (Content-Length == size, else 416) or a window given by
                               Content-Range (`*` -> 501, malformed or inconsistent -> 400, total > size -> 416)
    GET/HEAD <url_path>.vhd    the VHD view: dynamic, or differencing with `?base=<vdi uuid>`
    PUT      <url_path>.vhd    (http mode) a dynamic or differencing VHD applied to the disk

A PUT lands in the VDI only once its body arrived complete and valid; a Content-Range PUT lands its whole range or
nothing (see `Disk.begin_upload`).
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

from smapi.transfer import bits as B
from smapi.transfer import formats
from smapi.transfer.auth import Authenticator
from smapi.transfer.disk import Disk, Upload
from smapi.transfer.exact import ExactImport
from smapi.transfer.httpbase import HandlerBase, HttpError, IterReader, OpenDisk, one, upload_to
from smapi.transfer.ranges import put_range
from smapi.vhd.view import VhdView


class ExposureSite:
    """What one exposure serves: its disk under `/vdi_uuid_<vdi>` and `.vhd`."""

    toolstack = False

    def __init__(self, disk: Disk, vdi_uuid: str, mode: str, auth: Authenticator, open_disk: OpenDisk) -> None:
        self.disk = disk
        self.vdi_uuid = vdi_uuid
        self.mode = mode
        self.auth = auth
        self.open_disk = open_disk
        self.sessions = B.Sessions()
        self.url_path = f"/vdi_uuid_{vdi_uuid}"
        self._view: Optional[Tuple[int, VhdView]] = None

    def dynamic_view(self) -> VhdView:
        # Cached until the disk is written: qemu's curl driver sends many Range GETs for one download.
        gen = self.disk.generation
        if self._view is None or self._view[0] != gen:
            self._view = (gen, formats.vhd_view(self.disk, self.vdi_uuid))
        return self._view[1]


class ExposureVerbs(HandlerBase):
    def _get_exposure(self, kind: str, query: Dict[str, list]) -> None:
        site = self.server.site
        if kind == "raw":
            export = formats.FORMATS["raw"].export(site.disk, site.vdi_uuid)
            self._send_ranged(site.disk.size, export.content_type, export.pieces)
            return
        base = one(query, "base")
        if base is None:
            view = site.dynamic_view()
            self._send_ranged(view.length, "application/vhd", view.pieces)
            return
        with self._opened(base, False) as base_disk:
            view = formats.vhd_view(site.disk, site.vdi_uuid, base_disk, base)
            self._send_ranged(view.length, "application/vhd", view.pieces)

    def _put_exposure(self, kind: str) -> None:
        site = self.server.site
        if site.mode != "http":
            raise HttpError(405, f"PUT is not served in {site.mode} mode: use BITS_POST",
                            {"Allow": "GET, HEAD, BITS_POST"})
        if not site.disk.writable:
            raise HttpError(403, "the VDI is exposed read-only")
        length = self._content_length()
        if kind == "raw":
            where = put_range(self.headers.get("Content-Range"), length, site.disk.size)
            with upload_to(site.disk) as up:
                write_body(up, where.offset, self._body(length))
        else:
            with upload_to(site.disk) as up:
                formats.FORMATS["vhd"].import_into(ExactImport(up), IterReader(self._body(length)), length)
        self.send_simple(200)


def write_body(up: Upload, offset: int, body: Iterator[bytes]) -> None:
    for data in body:
        up.write(offset, data)
        offset += len(data)
