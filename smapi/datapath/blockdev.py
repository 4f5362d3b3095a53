"""Loop devices over a region of a block device (a raw VDI that is one contiguous run of an LV on its PV).

Such a VDI needs no server: ``losetup --offset --sizelimit`` over the PV gives consumers a real block device. A
device is made when the VDI is attached on this host and released when its last datapath detaches (or the SR
detaches). Per-verb processes come and go, so each device is recorded under the run directory, under the VDI's
flock, before anyone is told its name:

    <run_dir>/loops/<vdi>.json   {"vdi", "owner", "device", "source", "offset", "size", "readonly", "boot_id"}
    <run_dir>/loops/<vdi>.lock   (<vdi>@ro.json / .lock: the read-only device handed to readers)

A record of another boot names a device that no longer exists (or now belongs to someone else): it is dropped
without touching the device. A device is only detached while it still is a loop over the recorded region.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Tuple

from . import runtime
from .loop import LoopDevices

SUBDIR = "loops"
Region = Tuple[str, int, int]  # (device, offset, size)


#: readers get their own read-only device (a reader joining a writer must not be handed a writable one)
MODES = ("", "@ro")


def _paths(run_dir: str, vdi: str, mode: str = "") -> Tuple[str, str]:
    d = os.path.join(os.path.abspath(run_dir), SUBDIR)
    name = runtime.file_name(vdi + mode)
    return os.path.join(d, name + ".json"), os.path.join(d, name + ".lock")


def _still_ours(devices: LoopDevices, rec: Dict[str, object]) -> bool:
    dev = str(rec["device"])
    return (rec.get("boot_id") == runtime.boot_id() and devices.backing_file(dev) == rec["source"]
            and devices.region(dev) == (rec["offset"], rec["size"]))


def ensure(run_dir: str, vdi: str, region: Region, *, owner: str, readonly: bool,
           devices: Optional[LoopDevices] = None) -> str:
    """The loop device of ``vdi`` over ``region`` (made if missing), one per mode; idempotent."""
    devices = devices or LoopDevices()
    path, lock = _paths(run_dir, vdi, MODES[1] if readonly else MODES[0])
    source, offset, size = region
    runtime.ensure_dir(os.path.dirname(path))
    with runtime.locked(lock):
        rec = runtime.read_json(path)
        if rec is not None and _still_ours(devices, rec):
            if (rec["source"], rec["offset"], rec["size"]) == (source, offset, size):
                return str(rec["device"])
            devices.detach(str(rec["device"]))  # the LV moved (resize): a device over the old region is wrong
        dev = devices.attach(source, readonly=readonly, offset=offset, size=size)
        try:
            runtime.write_json(path, {"vdi": vdi, "owner": owner, "device": dev, "source": source, "offset": offset,
                                      "size": size, "readonly": readonly, "boot_id": runtime.boot_id()})
        except BaseException:
            devices.detach(dev)
            raise
        return dev


def release(run_dir: str, vdi: str, devices: Optional[LoopDevices] = None) -> bool:
    """Detach ``vdi``'s loop devices (those still ours) and forget them; True if a record existed."""
    devices = devices or LoopDevices()
    found = False
    for mode in MODES:
        path, lock = _paths(run_dir, vdi, mode)
        if not os.path.exists(path):
            continue
        with runtime.locked(lock):
            rec = runtime.read_json(path)
            if rec is None:
                continue
            if _still_ours(devices, rec):
                devices.detach(str(rec["device"]))
            runtime.remove(path)
            found = True
    return found


def recorded(run_dir: str, owner: Optional[str] = None) -> Dict[str, str]:
    """{vdi: device} of every record (of ``owner`` only, when given; a VDI with a writer's and a reader's device
    is listed once)."""
    d = os.path.join(os.path.abspath(run_dir), SUBDIR)
    out: Dict[str, str] = {}
    for entry in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if entry.endswith(".json"):
            rec = runtime.read_json(os.path.join(d, entry))
            if rec is not None and (owner is None or rec.get("owner") == owner):
                out[str(rec["vdi"])] = str(rec["device"])
    return out


def devices_over(run_dir: str, source: str, offset: int, devices: Optional[LoopDevices] = None) -> List[str]:
    """Recorded loop devices (still ours) over a region of ``source`` that starts at ``offset``: a volume there is
    handed out as those devices, whose size is fixed when they are made."""
    devices = devices or LoopDevices()
    d = os.path.join(os.path.abspath(run_dir), SUBDIR)
    out: List[str] = []
    for entry in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if entry.endswith(".json"):
            rec = runtime.read_json(os.path.join(d, entry))
            if (rec is not None and rec.get("source") == source and rec.get("offset") == offset
                    and _still_ours(devices, rec)):
                out.append(str(rec["device"]))
    return out


def cleanup_stale(run_dir: str, owner: str, in_use: Callable[[str], bool],
                  devices: Optional[LoopDevices] = None) -> List[str]:
    """Release ``owner``'s devices of VDIs that ``in_use`` says have no datapath any more (a killed verb, a
    restart); returns those VDIs."""
    cleaned = []
    for vdi in recorded(run_dir, owner):
        if not in_use(vdi) and release(run_dir, vdi, devices):
            cleaned.append(vdi)
    return cleaned
