"""The host's toolstack-compatible endpoints (`smapi transfer serve-host`): any VDI of an SR attached here, by uuid.

    GET /export_raw_vdi?vdi=<uuid>&format=raw|vhd|tar[&base=<uuid>]
    PUT /import_raw_vdi?vdi=<uuid>&format=raw|vhd|tar[&chunked]   (or sr_uuid=<uuid> instead of vdi=: a new VDI)

The formats are `smapi.transfer.formats`' objects, the same the CLI uses. An import lands in the VDI only once its
body arrived complete and valid; an import into a new VDI destroys that VDI when it fails.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Callable, Dict, Iterator, Optional, Tuple

from smapi.transfer import formats
from smapi.transfer.auth import Authenticator
from smapi.transfer.disk import Upload
from smapi.transfer.exact import ExactImport
from smapi.transfer.httpbase import DRAIN_LIMIT, HandlerBase, HttpError, IterReader, OpenDisk, one, upload_to
from smapi.vhd.receive import stream_footer

log = logging.getLogger("smapi.transfer.http")

IMPORTED_NAME = "Imported VDI"  # xapi's name_label for a VDI created by /import_raw_vdi
HTTP_FORMATS = ("raw", "vhd", "tar")


class HostSite:
    """The toolstack endpoints: any VDI of an SR attached on this host, by uuid."""

    toolstack = True
    mode = "http"

    def __init__(self, auth: Authenticator, open_disk: OpenDisk,
                 create_vdi: Optional[Callable[[str, int], str]] = None,
                 destroy_vdi: Optional[Callable[[str], None]] = None) -> None:
        from smapi.transfer import locate

        self.auth = auth
        self.open_disk = open_disk
        self.create_vdi = create_vdi or (lambda sr, size: locate.create_vdi(sr, size, IMPORTED_NAME))
        self.destroy_vdi = destroy_vdi or locate.destroy_vdi


def _format(query: Dict[str, list]) -> formats.Format:
    name = (one(query, "format") or "raw").lower()
    fmt = formats.get(name) if name in HTTP_FORMATS else None
    if fmt is None:
        raise HttpError(404, f"Unknown format {name!r} (raw, vhd or tar)")
    return fmt


def _cookie(header: Optional[str], name: str) -> bool:
    if not header:
        return False
    from http.cookies import CookieError, SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return False
    return name in jar


class ToolstackVerbs(HandlerBase):
    def _export(self, query: Dict[str, list]) -> None:
        vdi = one(query, "vdi")
        if not vdi:
            raise HttpError(400, "Missing vdi query parameter")
        fmt = _format(query)
        base = one(query, "base")
        if base and fmt.name != "vhd":
            raise HttpError(400, "base= is supported with format=vhd")
        with self._opened(vdi, False) as disk, contextlib.ExitStack() as stack:
            base_disk = stack.enter_context(self._opened(base, False)) if base else None
            export = fmt.export(disk, vdi, base_disk, base or "")
            self.send_response(200)
            self.send_header("Content-Type", export.content_type)
            self.send_header("Content-Disposition", f'attachment; filename="{vdi}.{fmt.name}"')
            if export.length is None:
                # No length known in advance: the body ends when the connection closes (as xapi does).
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(export.length))
            self.end_headers()
            export.write_to(self.wfile)

    def _import(self, query: Dict[str, list]) -> None:
        fmt = _format(query)
        # vhd-tool's record protocol: selected by the query or by a cookie (vhd-tool sends `Cookie: chunked=true`).
        chunked = "chunked" in query or _cookie(self.headers.get("Cookie"), "chunked")
        if chunked and fmt.name != "raw":
            raise HttpError(404, "Cannot handle chunked VHD: the chunked protocol carries raw data")
        length: Optional[int] = self._content_length(required=not chunked)
        if chunked and self.headers.get("Content-Length") is None:
            length = None  # the stream's end marker ends the body
        vdi = one(query, "vdi")
        created = None
        body: Optional[Iterator[bytes]] = None
        if not vdi:
            vdi, body = self._create_for_import(query, fmt.name, chunked, length)
            created = vdi
        try:
            with self._opened(vdi, True) as disk:
                if fmt.name == "raw" and not chunked and (length or 0) > disk.size:
                    raise HttpError(416, f"{length} bytes do not fit the {disk.size}-byte VDI")
                with upload_to(disk) as up:
                    if chunked:
                        self._receive_chunked(up, length)
                    else:
                        self._import_body(up, fmt, length, body)
        except BaseException:
            if created is not None:
                try:
                    self.server.site.destroy_vdi(created)  # nothing half-imported stays behind
                except Exception:  # noqa: BLE001 - the import's own error is the one to report
                    log.exception("destroying VDI %s after its import failed", created)
            raise
        self.send_simple(200, vdi)

    def _create_for_import(self, query: Dict[str, list], fmt: str, chunked: bool,
                           length: Optional[int]) -> Tuple[str, Optional[Iterator[bytes]]]:
        """No vdi=: like xapi, an import with sr_uuid (or sr_id) creates "Imported VDI" of the image's size: the
        Content-Length of a raw body, the virtual size in a VHD's footer copy (its first 512 bytes, read here: the
        body is returned with them put back in front). Returns the VDI and that body (None: not read yet)."""
        from smapi.interface.errors import SmapiError, Sr_not_attached

        sr = one(query, "sr_uuid") or one(query, "sr_id")
        if not sr:
            raise HttpError(400, "Missing vdi query parameter (or sr_uuid, to import into a new VDI)")
        body: Optional[Iterator[bytes]] = None
        if fmt == "raw" and not chunked and length:
            size = length
        elif fmt == "vhd" and length:
            pieces = self._body(length)
            head = b""
            for piece in pieces:
                head += piece
                if len(head) >= 512:
                    break
            size = stream_footer(head[:512]).current_size
            body = itertools.chain([head], pieces)
        else:
            raise HttpError(400, "importing into a new VDI needs format=raw or format=vhd with a Content-Length "
                                 "(a tar stream or the chunked protocol does not say the size)")
        try:
            return self.server.site.create_vdi(sr, size), body
        except Sr_not_attached as e:
            raise HttpError(404, f"cannot create a VDI in SR {sr}: {e}") from None
        except SmapiError as e:
            raise HttpError(400, f"cannot create a {size}-byte VDI in SR {sr}: {e}") from None

    def _import_body(self, up: Upload, fmt: formats.Format, length: Optional[int],
                     body: Optional[Iterator[bytes]] = None) -> None:
        """`body`: the request body when part of it was read already (to learn a new VDI's size)."""
        stream = IterReader(body or self._body(length or 0))
        try:
            fmt.import_into(ExactImport(up), stream, length)
        except formats.XvaFormatError as e:
            raise HttpError(400, str(e)) from None

    def _receive_chunked(self, up: Upload, length: Optional[int]) -> None:
        from smapi.transfer import chunked

        self._start_body()
        self._body_started = True
        if length is None:
            # Unknown length: answer, then close; a refusal must not leave the rest of the stream to be parsed as
            # the next request (pretend a large remainder, so _refuse closes and lingers).
            self.close_connection = True
            self._body_left = DRAIN_LIMIT + 1
        else:
            self._body_left = length

        def read(n: int) -> bytes:
            data = self.rfile.read(n)
            if length is not None:
                self._body_left -= len(data)
            return data

        try:
            chunked.receive(read, up.write, up.size, length)
        except chunked.ChunkedError as e:
            raise HttpError(e.status, str(e)) from None
        self._body_left = 0
