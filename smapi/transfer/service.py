"""The Transfer API, served from the host itself (no helper VM).

How the VM-era arguments map:

* `network_uuid`, `network_mode`, `network_ip/mask/gateway` -> the address the exposure binds: loopback with
  dhcp (the default); `network_mode=manual` + `network_ip` for any other address of this host
  (`smapi.transfer.args.bind_address`). The record's `ip` is that address.
* `network_mac` -> checked for form and otherwise ignored: there is no VM interface.
* `network_port` -> the listening port (default 80, 443 with TLS, 3260 for iSCSI; "0" picks a free port, which
  the record then shows). smapi also accepts a port for iSCSI.
* `expose_vhd` -> accepted; the `.vhd` view exists on every http/bits exposure (`url_full` + ".vhd").
* VM uuids (expose_forest, number_of_ip_addresses_needed) -> VDIs naming their trees (`smapi.transfer.trees`).
* `prepare_transfer_vm_template` -> nothing to install; returns "OpaqueRef:NULL".
* record handle -> a fresh uuid naming the exposure's state directory (`smapi.transfer.state`).

Every call runs `cleanup` first, as the original plugin did, so exposures that timed out or whose server died are
removed before anything looks at them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid as uuidlib
from typing import List, Optional

from smapi.interface.errors import (
    ArgumentError,
    Internal_error,
    LogsNotFound,
    SmapiError,
    VDIInUse,
    VDINotFound,
    VDINotInUse,
)
from smapi.interface.skeletons.transfer import Transfer_skeleton
from smapi.transfer import args as A
from smapi.transfer import processes, record
from smapi.transfer.auth import Credentials
from smapi.transfer.locate import LocatedVdi, find_vdi, in_use
from smapi.transfer.state import Exposure, all_exposures, logs_dir

START_TIMEOUT = 60.0
IQN_PREFIX = "iqn.2026-01.org.smapi.transfer"
_MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")


def _exposure(handle: str) -> Optional[Exposure]:
    try:
        return Exposure.load(handle)
    except ValueError:
        return None


def _collect_log(e: Exposure) -> Optional[str]:
    """Copy the exposure's server log to the logs directory; the path, or None when there is no log."""
    if not os.path.exists(e.log_path):
        return None
    os.makedirs(logs_dir(), exist_ok=True)
    dest = os.path.join(logs_dir(), f"tvm_log_{e.vdi_uuid}_timestamp_{time.time_ns() // 1000}")
    shutil.copyfile(e.log_path, dest)
    return dest


def remove_exposure(e: Exposure) -> None:
    """Stop the server if it still runs, undo what it left (iSCSI target, mounts), delete the state."""
    processes.stop(e.pid, e.handle)
    if e.transfer_mode == "iscsi":
        from smapi.transfer.iscsi import clean_leftovers

        clean_leftovers(e)
    if e.get_log:
        with contextlib.suppress(OSError):
            _collect_log(e)
    e.remove()


def cleanup() -> str:
    processes.reap()
    for e in all_exposures():
        running = processes.alive(e.pid, e.handle)
        if e.status == "starting" and (running or time.time() - e.created < START_TIMEOUT + 5):
            continue  # an expose call is still waiting for it
        if e.status in ("failed", "timedout") or not running:
            remove_exposure(e)
    return "OK"


def _start_error(e: Exposure) -> SmapiError:
    text = e.error or "the exposure server exited before it was ready"
    if any(s in text for s in ("Address already in use", "Cannot assign requested address", "Permission denied",
                               "cannot listen")):
        return ArgumentError(f"cannot listen on {e.ip}:{e.port}: {text}")
    # The VDI's lock is held by another writer, or (the engine's VDIInUse) a datapath activated it after the
    # service looked: either way someone else uses the VDI.
    if "lock" in text.lower() or "VDI is currently in use" in text or "VDIInUse" in text:
        return VDIInUse(e.vdi_uuid)
    return Internal_error(f"exposing VDI {e.vdi_uuid} failed: {text}")


class TransferService(Transfer_skeleton):
    def __init__(self, driver: object = None) -> None:
        self.driver = driver

    # -- housekeeping ---------------------------------------------------------------------------------------------
    def cleanup(self) -> str:
        return cleanup()

    def prepare_transfer_vm_template(self) -> str:
        cleanup()
        return "OpaqueRef:NULL"

    # -- expose ---------------------------------------------------------------------------------------------------
    def expose(self, transfer_mode: str, vdi_uuid: str, network_uuid: str, read_only: Optional[str] = None,
               network_mode: Optional[str] = None, use_ssl: Optional[str] = None, network_port: Optional[str] = None,
               timeout_minutes: Optional[str] = None, get_log: Optional[str] = None,
               network_ip: Optional[str] = None, network_mask: Optional[str] = None,
               network_gateway: Optional[str] = None, network_mac: Optional[str] = None,
               expose_vhd: Optional[str] = None) -> str:
        cleanup()
        A.validate_all({"transfer_mode": transfer_mode, "vdi_uuid": vdi_uuid, "network_uuid": network_uuid,
                        "read_only": read_only, "network_mode": network_mode, "use_ssl": use_ssl,
                        "network_port": network_port, "timeout_minutes": timeout_minutes, "get_log": get_log,
                        "network_ip": network_ip, "network_mask": network_mask,
                        "network_gateway": network_gateway, "network_mac": network_mac, "expose_vhd": expose_vhd})
        mode = transfer_mode.lower()
        if mode not in ("http", "bits", "iscsi"):
            raise ArgumentError(f"transfer_mode must be http, bits or iscsi, not {transfer_mode!r}")
        if "," in vdi_uuid:
            raise ArgumentError("smapi exposes one VDI per call (use expose_forest for trees)")
        if network_mac is not None and not _MAC.match(network_mac):
            raise ArgumentError(f"network_mac {network_mac!r} is not a MAC address")
        A.parse_bool("expose_vhd", expose_vhd)
        located = find_vdi(vdi_uuid)
        from smapi.transfer.trees import MAX_SNAPSHOTS, snapshot_count

        if snapshot_count(located) > MAX_SNAPSHOTS:
            from smapi.interface.errors import SnapshotTreeTooLong

            raise SnapshotTreeTooLong(f"VDI {vdi_uuid}'s tree has 15 snapshots or more")
        return self._expose_located(located, mode, network_uuid, read_only, network_mode, use_ssl, network_port,
                                    timeout_minutes, get_log, network_ip, network_mask, network_gateway)

    def _expose_located(self, located: LocatedVdi, mode: str, network_uuid: str, read_only: Optional[str],
                        network_mode: Optional[str], use_ssl: Optional[str], network_port: Optional[str],
                        timeout_minutes: Optional[str], get_log: Optional[str], network_ip: Optional[str],
                        network_mask: Optional[str], network_gateway: Optional[str]) -> str:
        ro = A.parse_bool("read_only", read_only)
        ssl = A.parse_bool("use_ssl", use_ssl)
        if ssl and mode == "iscsi":
            raise ArgumentError("use_ssl is supported for http and bits only")
        if located.read_only and not ro:
            raise ArgumentError(f"VDI {located.vdi} is read-only: expose it with read_only=true")
        default_port = A.DEFAULT_PORTS["iscsi" if mode == "iscsi" else ("https" if ssl else "http")]
        port = A.parse_port(network_port, default_port)
        minutes = A.parse_timeout(timeout_minutes)
        keep_log = A.parse_bool("get_log", get_log)
        ip = A.bind_address(network_uuid, network_mode, network_ip, network_mask, network_gateway)
        for other in all_exposures():
            if other.vdi_uuid == located.vdi:
                raise VDIInUse(located.vdi)
        busy = in_use(located)
        if busy:
            raise VDIInUse(located.vdi)
        creds = Credentials.generate()
        handle = str(uuidlib.uuid4())
        e = Exposure(handle=handle, vdi_uuid=located.vdi, sr=located.sr, driver_ref=located.driver_ref,
                     transfer_mode=mode, ip=ip, port=port, use_ssl=ssl, read_only=ro, username=creds.username,
                     password=creds.password, timeout_minutes=minutes, get_log=keep_log)
        if mode == "iscsi":
            e.iscsi_iqn = f"{IQN_PREFIX}:vdi.{located.vdi}.{handle}".lower()
            e.iscsi_lun = "1"
            e.iscsi_sn = located.vdi
        e.save()
        try:
            if ssl:
                from smapi.transfer.tls import make_self_signed

                make_self_signed(e.directory, ip)
            # The exposure server records its own pid in the state; the service only keeps it in memory, so the
            # two never overwrite each other's view of the file.
            e.pid = processes.spawn(handle, os.path.join(e.directory, "daemon.out"))
            self._wait_ready(e)
        except BaseException:
            latest = Exposure.load(handle) or e
            latest.pid = latest.pid or e.pid
            remove_exposure(latest)
            raise
        return handle

    @staticmethod
    def _wait_ready(e: Exposure) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            latest = Exposure.load(e.handle)
            if latest is not None and latest.status == "exposed":
                return
            if latest is not None and latest.status == "failed":
                raise _start_error(latest)
            if not processes.alive(e.pid, e.handle):
                latest = Exposure.load(e.handle) or e
                raise _start_error(latest)
            time.sleep(0.02)
        raise Internal_error(f"the exposure of VDI {e.vdi_uuid} was not ready within {START_TIMEOUT:.0f} s")

    def expose_forest(self, vm_uuids: str, network_uuid: str, read_only: Optional[str] = None,
                      network_mode: Optional[str] = None, use_ssl: Optional[str] = None,
                      network_port: Optional[str] = None, timeout_minutes: Optional[str] = None,
                      get_log: Optional[str] = None, network_ip: Optional[str] = None,
                      network_mask: Optional[str] = None, network_gateway: Optional[str] = None) -> str:
        """Every VDI of every named tree, each in its own bits exposure; the handles comma-joined."""
        cleanup()
        A.validate_all({"vm_uuids": vm_uuids, "network_uuid": network_uuid, "network_port": network_port})
        from smapi.transfer.trees import trees

        members = [v for tree in trees(_split(vm_uuids)).values() for v in tree]
        if network_port not in (None, "0") and len(members) > 1:
            raise ArgumentError(f"{len(members)} VDIs cannot share network_port {network_port}; omit it or "
                                f"give 0")
        port = network_port if network_port is not None else "0"
        handles: List[str] = []
        try:
            for located in members:
                handles.append(self._expose_located(located, "bits", network_uuid, read_only, network_mode,
                                                    use_ssl, port, timeout_minutes, get_log, network_ip,
                                                    network_mask, network_gateway))
        except BaseException:
            for h in handles:
                with contextlib.suppress(SmapiError):
                    self.unexpose(h)
            raise
        return ",".join(handles)

    def number_of_ip_addresses_needed(self, vm_uuids: str) -> str:
        cleanup()
        A.validate_all({"vm_uuids": vm_uuids})
        from smapi.transfer.trees import trees

        return str(len(trees(_split(vm_uuids))))

    # -- records --------------------------------------------------------------------------------------------------
    def get_record(self, record_handle: Optional[str] = None, vdi_uuid: Optional[str] = None) -> str:
        cleanup()
        A.validate_all({"record_handle": record_handle, "vdi_uuid": vdi_uuid})
        if record_handle is not None:
            e = _exposure(record_handle)
            if e is None:
                raise ArgumentError(f"no exposure has record handle {record_handle}")
            return record.exposed_record(e)
        if vdi_uuid is None:
            raise ArgumentError("give record_handle or vdi_uuid")
        for e in all_exposures():
            if e.vdi_uuid == vdi_uuid and e.status == "exposed":
                return record.exposed_record(e)
        located = find_vdi(vdi_uuid)
        return record.unexposed_record(vdi_uuid, in_use(located) is not None)

    def unexpose(self, record_handle: str) -> str:
        cleanup()
        A.validate_all({"record_handle": record_handle})
        e = _exposure(record_handle)
        if e is None:
            raise VDINotInUse(record_handle)
        remove_exposure(e)  # with get_log, the log is kept once the server has stopped
        return "OK"

    def save_logs(self, record_handle: str) -> str:
        cleanup()
        A.validate_all({"record_handle": record_handle})
        e = _exposure(record_handle)
        if e is None:
            raise VDINotInUse(record_handle)
        try:
            find_vdi(e.vdi_uuid)
        except VDINotFound:
            raise
        path = _collect_log(e)
        if path is None:
            raise LogsNotFound(record_handle)
        return "file://" + path

    def get_import_instructions(self, vdi_uuid: str) -> str:
        cleanup()
        A.validate_all({"vdi_uuid": vdi_uuid})
        from smapi.transfer.disk import Disk
        from smapi.transfer.importplan import instructions, read_ova
        from smapi.transfer.locate import open_data

        located = find_vdi(vdi_uuid)
        disk = Disk(open_data(located, writable=False), writable=False)
        try:
            return instructions(read_ova(disk))
        finally:
            disk.close()


def _split(uuids: str) -> List[str]:
    out = [u for u in (x.strip() for x in uuids.split(",")) if u]
    if not out:
        raise ArgumentError("vm_uuids names no VDI")
    return out
