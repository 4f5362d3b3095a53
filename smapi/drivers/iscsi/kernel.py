"""The kernel initiator: open-iscsi (iscsiadm, iscsid) logs in, udev names the LUN's block device.

Used where the kernel has iSCSI (``iscsi_tcp``); CI hosts have not (no NETLINK_ISCSI, real-stacks §2.2), so this
path is only exercised on real hosts and its test is skipped elsewhere. The device is found by its SCSI id:
pyudev's ``ID_SERIAL`` (or ``ID_SCSI_SERIAL``) when udevd runs, else ``/dev/disk/by-id/scsi-<SCSIid>``.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import List, Optional

from smapi.common import commands
from smapi.drivers.iscsi import discovery
from smapi.drivers.iscsi.config import IscsiTarget
from smapi.drivers.iscsi.initiator import Initiator, read_state, remove_session_dir, write_state
from smapi.drivers.iscsi.libiscsi import LunInfo
from smapi.drivers.iscsi.refcount import Node
from smapi.interface.errors import Backend_error


def find_by_scsi_id(scsi_id: str) -> Optional[str]:
    link = f"/dev/disk/by-id/scsi-{scsi_id}"
    if os.path.exists(link):
        return os.path.realpath(link)
    try:
        import pyudev
    except ImportError:
        return None
    for dev in pyudev.Context().list_devices(subsystem="block", DEVTYPE="disk"):
        if scsi_id in (dev.properties.get("ID_SERIAL"), dev.properties.get("ID_SCSI_SERIAL")):
            return dev.device_node
    return None


class KernelInitiator(Initiator):
    name = "kernel"

    @classmethod
    def available(cls) -> Optional[str]:
        if not os.path.isdir("/sys/class/iscsi_transport") and not os.path.isdir("/sys/module/iscsi_tcp"):
            return "the kernel has no iSCSI initiator (no iscsi_tcp module)"
        if shutil.which("iscsiadm") is None:
            return "iscsiadm is not installed (Debian: open-iscsi)"
        return None

    @staticmethod
    def _adm(args: List[str], what: str, error: str) -> str:
        try:
            r = commands.run(["iscsiadm", *args], timeout=4 * discovery.timeout(), check=False)
        except commands.CommandTimedOut:
            raise Backend_error.classic(error, f"{what}: iscsiadm timed out") from None
        if r.returncode not in (0, 15):  # 15: already logged in / session exists
            raise Backend_error.classic(error, f"{what}: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def login(self, target: IscsiTarget, lun: LunInfo, session_dir: str) -> str:
        # Under the node's lock: another SR's logout must not end the session between our login and our count.
        with Node(str(target.portal), target.iqn).locked() as shared:
            dev = self.device(session_dir) or self._login(target, lun, session_dir)
            shared.add(os.path.basename(session_dir))
            return dev

    def _login(self, target: IscsiTarget, lun: LunInfo, session_dir: str) -> str:
        node = ["-m", "node", "-T", target.iqn, "-p", str(target.portal)]
        self._adm(["-m", "discovery", "-t", "sendtargets", "-p", str(target.portal)], str(target.portal),
                  "ISCSIDiscovery")
        settings = {"node.session.auth.authmethod": "CHAP" if target.chap.user else "None"}
        if target.chap.user:
            settings.update({"node.session.auth.username": target.chap.user,
                             "node.session.auth.password": target.chap.password})
        if target.chap.incoming_user:
            settings.update({"node.session.auth.username_in": target.chap.incoming_user,
                             "node.session.auth.password_in": target.chap.incoming_password})
        for key, value in settings.items():
            self._adm([*node, "--op", "update", "-n", key, "-v", value], target.where(), "ISCSILogin")
        self._adm([*node, "--login"], target.where(), "ISCSILogin")
        write_state(session_dir, {"initiator": self.name, "target": str(target.portal), "iqn": target.iqn,
                                  "lun": lun.lun, "scsi_id": lun.scsi_id})
        deadline = time.monotonic() + 4 * discovery.timeout()
        while time.monotonic() < deadline:
            found = find_by_scsi_id(lun.scsi_id)
            if found:
                write_state(session_dir, {**read_state(session_dir), "device": found})
                return found
            time.sleep(0.1)
        raise Backend_error.classic("ISCSIDevice", f"{target.where()}: no block device with SCSI id "
                                                   f"{lun.scsi_id} appeared after login")

    def device(self, session_dir: str) -> Optional[str]:
        state = read_state(session_dir)
        return find_by_scsi_id(state["scsi_id"]) if state.get("scsi_id") else None

    def logout(self, session_dir: str) -> None:
        # SRs on LUNs of one target share the node's session: only the last one out logs it out.
        state = read_state(session_dir)
        if state.get("iqn"):
            holder = os.path.basename(session_dir)
            with Node(state["target"], state["iqn"]).locked() as shared:
                if not [h for h in shared.holders() if h != holder]:
                    self._adm(["-m", "node", "-T", state["iqn"], "-p", state["target"], "--logout"], state["iqn"],
                              "ISCSILogout")
                shared.remove(holder)  # after a logout that failed (raised) the SR still counts, for a retry
        remove_session_dir(session_dir)
