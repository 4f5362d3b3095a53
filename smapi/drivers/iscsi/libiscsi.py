"""A userspace iSCSI client on libiscsi (``libiscsi.so.7``, Debian libiscsi7) through ctypes.

Used for everything but the data path: SendTargets discovery, logging in to check a target and its CHAP secrets
(mutual CHAP included, which qemu does not verify), REPORT LUNS, INQUIRY (standard, unit serial number and
device identification pages) and READ CAPACITY(16). No Python package binds libiscsi without a compiler, and
its command-line tools print binary designators unreadably, so the few calls needed are bound here.

Every call is bounded: the portal is reached first with a plain TCP connect under a timeout (libiscsi's own
connect may wait for the kernel's SYN retries), and libiscsi's task timeout covers the SCSI commands.
Failures raise :class:`IscsiFailure` with a ``kind`` the driver turns into a typed SMAPI error.
"""

from __future__ import annotations

import ctypes
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Tuple

#: the initiator name of our userspace sessions (a host's own name is used where one is configured)
DEFAULT_INITIATOR = "iqn.2026-11.org.smapi:userspace"
DEFAULT_TIMEOUT = 5.0

_SESSION_DISCOVERY = 1
_SESSION_NORMAL = 2
_HEADER_DIGEST_NONE_CRC32C = 1
#: offset of `struct scsi_data datain` in libiscsi 1.19's `struct scsi_task` (x86-64/aarch64 LP64 layout)
_DATAIN_OFFSET = 64


class IscsiFailure(Exception):
    """kind: unreachable | login | chap | target | lun | io | unavailable."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Portal:
    host: str
    port: int = 3260

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Chap:
    user: str = ""
    password: str = ""
    #: mutual CHAP: what the target must prove it knows
    incoming_user: str = ""
    incoming_password: str = ""


@dataclass
class LunInfo:
    lun: int
    vendor: str = ""
    product: str = ""
    serial: str = ""
    size: int = 0
    scsi_id: str = ""
    device_type: int = 0
    designators: List[Tuple[int, bytes]] = field(default_factory=list)


class _DiscoveryPortal(ctypes.Structure):
    pass


_DiscoveryPortal._fields_ = [("next", ctypes.POINTER(_DiscoveryPortal)), ("portal", ctypes.c_char_p)]


class _DiscoveryAddress(ctypes.Structure):
    pass


_DiscoveryAddress._fields_ = [("next", ctypes.POINTER(_DiscoveryAddress)), ("target_name", ctypes.c_char_p),
                              ("portals", ctypes.POINTER(_DiscoveryPortal))]

_lib: Optional[ctypes.CDLL] = None
_lib_lock = threading.Lock()


def library() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL("libiscsi.so.7")
            except OSError as e:
                raise IscsiFailure("unavailable", f"libiscsi is not installed (Debian: libiscsi7): {e}") from None
            vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
            sigs = {
                "iscsi_create_context": ([cp], vp), "iscsi_destroy_context": ([vp], ci),
                "iscsi_set_targetname": ([vp, cp], ci), "iscsi_set_session_type": ([vp, ci], ci),
                "iscsi_set_header_digest": ([vp, ci], ci), "iscsi_set_timeout": ([vp, ci], ci),
                "iscsi_set_initiator_username_pwd": ([vp, cp, cp], ci),
                "iscsi_set_target_username_pwd": ([vp, cp, cp], ci),
                "iscsi_full_connect_sync": ([vp, cp, ci], ci), "iscsi_connect_sync": ([vp, cp], ci),
                "iscsi_login_sync": ([vp], ci), "iscsi_logout_sync": ([vp], ci),
                "iscsi_discovery_sync": ([vp], ctypes.POINTER(_DiscoveryAddress)),
                "iscsi_free_discovery_data": ([vp, ctypes.POINTER(_DiscoveryAddress)], None),
                "iscsi_reportluns_sync": ([vp, ci, ci], vp), "iscsi_inquiry_sync": ([vp, ci, ci, ci, ci], vp),
                "iscsi_readcapacity16_sync": ([vp, ci], vp), "scsi_free_scsi_task": ([vp], None),
                "iscsi_get_error": ([vp], cp),
            }
            for name, (args, res) in sigs.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = args, res
            _lib = lib
        return _lib


def check_reachable(portal: Portal, timeout: float) -> None:
    """A TCP connect to the portal within `timeout`, so an unreachable portal fails fast and says so."""
    try:
        with socket.create_connection((portal.host, portal.port), timeout=timeout):
            return
    except socket.timeout:
        raise IscsiFailure("unreachable", f"no answer from {portal} within {timeout:.0f}s") from None
    except OSError as e:
        raise IscsiFailure("unreachable", f"cannot reach {portal}: {e.strerror or e}") from None


def _classify_login(text: str) -> str:
    low = text.lower()
    if "authentication" in low or "chap" in low:
        return "chap"
    if "not found" in low or "target removed" in low:
        return "target"
    if "connect" in low and "login" not in low:
        return "unreachable"
    return "login"


class Session:
    """One libiscsi context: a discovery session (no target) or a normal session to `target`."""

    def __init__(self, portal: Portal, target: str = "", chap: Chap = Chap(), *,
                 initiator: str = DEFAULT_INITIATOR, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.portal, self.target, self.timeout = portal, target, timeout
        self.lib = library()
        self.ctx = self.lib.iscsi_create_context(initiator.encode())
        if not self.ctx:
            raise IscsiFailure("unavailable", "libiscsi could not create a context")
        lib, ctx = self.lib, self.ctx
        lib.iscsi_set_session_type(ctx, _SESSION_NORMAL if target else _SESSION_DISCOVERY)
        lib.iscsi_set_header_digest(ctx, _HEADER_DIGEST_NONE_CRC32C)
        lib.iscsi_set_timeout(ctx, max(1, int(timeout)))
        if target:
            lib.iscsi_set_targetname(ctx, target.encode())
        if chap.user:
            lib.iscsi_set_initiator_username_pwd(ctx, chap.user.encode(), chap.password.encode())
        if chap.incoming_user:
            lib.iscsi_set_target_username_pwd(ctx, chap.incoming_user.encode(), chap.incoming_password.encode())
        self.logged_in = False

    def error(self) -> str:
        raw = self.lib.iscsi_get_error(self.ctx)
        return raw.decode(errors="replace") if raw else "unknown libiscsi error"

    def login(self, lun: int = 0) -> None:
        check_reachable(self.portal, self.timeout)
        if self.target:
            rc = self.lib.iscsi_full_connect_sync(self.ctx, str(self.portal).encode(), lun)
        else:
            rc = self.lib.iscsi_connect_sync(self.ctx, str(self.portal).encode())
            if rc == 0:
                rc = self.lib.iscsi_login_sync(self.ctx)
        if rc != 0:
            text = self.error()
            where = f"{self.target} at {self.portal}" if self.target else str(self.portal)
            raise IscsiFailure(_classify_login(text), f"login to {where} failed: {text}")
        self.logged_in = True

    def close(self) -> None:
        if self.ctx:
            if self.logged_in:
                self.lib.iscsi_logout_sync(self.ctx)
            self.lib.iscsi_destroy_context(self.ctx)
            self.ctx = None

    # -- commands ---------------------------------------------------------------------------------------------
    def discover(self) -> List[Tuple[str, List[str]]]:
        """SendTargets: (target IQN, [portal, ...]) for every target the portal offers us."""
        head = self.lib.iscsi_discovery_sync(self.ctx)
        if not head:
            raise IscsiFailure("login", f"SendTargets on {self.portal} failed: {self.error()}")
        out: List[Tuple[str, List[str]]] = []
        try:
            node = head
            while node:
                entry = node.contents
                portals, p = [], entry.portals
                while p:
                    portals.append((p.contents.portal or b"").decode())
                    p = p.contents.next
                out.append(((entry.target_name or b"").decode(), portals))
                node = entry.next
        finally:
            self.lib.iscsi_free_discovery_data(self.ctx, head)
        return out

    def _cmd(self, what: str, issue: Callable[[], Optional[int]]) -> bytes:
        """Run a SCSI command; a UNIT ATTENTION (the first command after login reports the reset) is retried."""
        for _ in range(4):
            task = issue()
            if not task:
                raise IscsiFailure("io", f"{what} on {self.target}: {self.error()}")
            try:
                base = ctypes.c_void_p(task).value or 0
                if ctypes.c_int.from_address(base).value == 0:  # task->status: GOOD
                    size = ctypes.c_int.from_address(base + _DATAIN_OFFSET).value
                    data = ctypes.c_void_p.from_address(base + _DATAIN_OFFSET + 8).value
                    return ctypes.string_at(data, size) if data and size > 0 else b""
                text = self.error()
            finally:
                self.lib.scsi_free_scsi_task(task)
            if "UNIT_ATTENTION" not in text:
                break
        raise IscsiFailure("lun", f"{what} on {self.target}: {text}")

    def report_luns(self) -> List[int]:
        data = self._cmd("REPORT LUNS", lambda: self.lib.iscsi_reportluns_sync(self.ctx, 0, 16384))
        length = int.from_bytes(data[0:4], "big")
        luns = []
        for off in range(8, min(len(data), 8 + length), 8):
            entry = data[off:off + 8]
            method = entry[0] >> 6
            luns.append(int.from_bytes(entry[0:2], "big") & 0x3FFF if method == 1 else entry[1])
        return sorted(luns)

    def inquiry(self, lun: int, page: Optional[int] = None) -> bytes:
        evpd, code = (0, 0) if page is None else (1, page)
        return self._cmd(f"INQUIRY of LUN {lun}", lambda: self.lib.iscsi_inquiry_sync(self.ctx, lun, evpd, code, 255))

    def capacity(self, lun: int) -> int:
        data = self._cmd(f"READ CAPACITY of LUN {lun}", lambda: self.lib.iscsi_readcapacity16_sync(self.ctx, lun))
        if len(data) < 12:
            raise IscsiFailure("io", f"short READ CAPACITY(16) answer from LUN {lun} of {self.target}")
        return (int.from_bytes(data[0:8], "big") + 1) * int.from_bytes(data[8:12], "big")

    def describe(self, lun: int) -> LunInfo:
        std = self.inquiry(lun)
        if len(std) < 36:
            raise IscsiFailure("io", f"short INQUIRY answer from LUN {lun} of {self.target}")
        if std[0] >> 5 != 0:  # peripheral qualifier: no device behind this LUN
            raise IscsiFailure("lun", f"{self.target} has no device at LUN {lun}")
        info = LunInfo(lun, vendor=std[8:16].decode(errors="replace").strip(),
                       product=std[16:32].decode(errors="replace").strip(), device_type=std[0] & 0x1F)
        pages = self.inquiry(lun, 0x00)
        supported = set(pages[4:4 + int.from_bytes(pages[2:4], "big")])
        if 0x80 in supported:
            page = self.inquiry(lun, 0x80)
            info.serial = page[4:4 + int.from_bytes(page[2:4], "big")].decode(errors="replace").strip()
        if 0x83 in supported:
            info.designators = parse_designators(self.inquiry(lun, 0x83))
        info.scsi_id = scsi_id(info.designators)
        if info.device_type == 0:
            info.size = self.capacity(lun)
        return info


def parse_designators(page: bytes) -> List[Tuple[int, bytes]]:
    """(designator type, value) of the LU's designators in a device identification VPD page (0x83)."""
    out: List[Tuple[int, bytes]] = []
    end = 4 + int.from_bytes(page[2:4], "big")
    off = 4
    while off + 4 <= min(end, len(page)):
        code_set, kind, length = page[off] & 0x0F, page[off + 1] & 0x0F, page[off + 3]
        assoc = (page[off + 1] >> 4) & 0x3
        value = page[off + 4:off + 4 + length]
        if assoc == 0 and code_set in (1, 2, 3):  # designators of the logical unit itself
            out.append((kind, value))
        off += 4 + length
    return out


def scsi_id(designators: List[Tuple[int, bytes]]) -> str:
    """The SCSI id the way udev's scsi_id prints it: the best LU designator, its type digit first.

    NAA (3; IEEE registered extended before registered before the others) beats EUI-64 (2) beats a SCSI name
    string (8) beats the T10 vendor id (1); binary values are hex, text keeps its characters with runs of blanks
    as one underscore.
    """
    naa_rank = {6: 0, 5: 1, 2: 2, 3: 3}

    def rank(item: Tuple[int, bytes]) -> Tuple[int, int]:
        kind, value = item
        order = {3: 0, 2: 1, 8: 2, 1: 3}.get(kind, 9)
        return order, naa_rank.get(value[0] >> 4, 9) if kind == 3 and value else 0

    for kind, value in sorted(designators, key=rank):
        if kind in (1, 8):
            return f"{kind}" + "_".join(value.rstrip(b"\0").decode(errors="replace").split())
        if kind in (2, 3):
            return f"{kind}{value.hex()}"
    return ""


@contextmanager
def session(portal: Portal, target: str = "", chap: Chap = Chap(), *, lun: int = 0,
            initiator: str = DEFAULT_INITIATOR, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Session]:
    s = Session(portal, target, chap, initiator=initiator, timeout=timeout)
    try:
        s.login(lun)
        yield s
    finally:
        s.close()


def discover_targets(portal: Portal, chap: Chap = Chap(), **kw: Any) -> List[Tuple[str, List[str]]]:
    with session(portal, "", chap, **kw) as s:
        return s.discover()


def list_luns(portal: Portal, target: str, chap: Chap = Chap(), **kw: Any) -> List[LunInfo]:
    """Every LUN of `target` holding a disk (LUN 0's array controller is left out)."""
    with session(portal, target, chap, **kw) as s:
        found = [s.describe(lun) for lun in s.report_luns()]
    return [i for i in found if i.device_type == 0]
