"""attach / activate / deactivate / detach of one VDI on one host, for several datapaths (dp) at once.

The SR engine calls these; each call may be a separate short-lived process, so the state lives in files under the
run directory and every change to one VDI's record happens under that VDI's flock:

    <run_dir>/datapath/<vdi>.json   {"vdi", "boot_id", "readonly", "image", "dps": {dp: state}, "loop": dev|null}
    <run_dir>/datapath/<vdi>.lock   the flock serialising calls on that VDI
    <run_dir>/nbd/...               the nbdkit servers (see smapi.datapath.nbd)

The first attach starts the NBD server (and a loop device when asked, raw files only); later attaches of other dps
share them; the last detach stops and removes everything. States are written as the storage interface's automaton
writes them (``Attached(RO)``, ``Activated(RW)``). A VDI is never RO on one dp and RW on another.

A record written under another boot id is stale (a host restart): attach discards it, removing its sockets and
files without signalling its recorded pids, which may belong to other programs by now.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from smapi.interface.errors import Illegal_transition

from . import runtime
from .loop import BlockDevices, LoopDevices
from .model import AttachResult, DatapathError, ImageSpec
from .nbd import NbdExport, NbdServer
from .nbd import cleanup_stale as _stop_all_servers

SUBDIR = "datapath"
DETACHED = "Detached"


def _mode(readonly: bool) -> str:
    return "RO" if readonly else "RW"


class _Vdi:
    """One VDI's record and the servers it owns; used only while holding the VDI's lock."""

    def __init__(self, run_dir: str, vdi: str, devices: Optional[BlockDevices]) -> None:
        self.vdi = vdi
        self.dir = os.path.join(os.path.abspath(run_dir), SUBDIR)
        name = runtime.file_name(vdi)
        self.path = os.path.join(self.dir, name + ".json")
        self.lock = os.path.join(self.dir, name + ".lock")
        self.nbd = NbdServer(run_dir)
        self.devices = devices
        self.rec: Optional[Dict[str, Any]] = None

    def load(self) -> None:
        rec = runtime.read_json(self.path)
        if rec is not None and rec.get("boot_id") != runtime.boot_id():
            self._discard_stale(rec)
            rec = None
        self.rec = rec

    def save(self) -> None:
        assert self.rec is not None
        runtime.ensure_dir(self.dir)
        runtime.write_json(self.path, self.rec)

    @property
    def dps(self) -> Dict[str, str]:
        return self.rec["dps"] if self.rec else {}

    def state(self, dp: str) -> str:
        return self.dps.get(dp, DETACHED)

    # -------------------------------------------------------------------------------------------- resources
    def ensure_server(self, image: ImageSpec, readonly: bool) -> NbdExport:
        """The running server of this VDI, (re)started if it is missing or died."""
        ex = self.nbd.get(self.vdi)
        if ex is not None and ex.running() and (ex.readonly != readonly or ex.image != image):
            self.nbd.stop(self.vdi)  # an orphan from an attach that never recorded itself
            ex = None
        if ex is None or not ex.running():
            ex = self.nbd.start(self.vdi, image, readonly=readonly)
        return ex

    def ensure_loop(self, image: ImageSpec, readonly: bool) -> Optional[str]:
        assert self.rec is not None and self.devices is not None
        dev = self.rec.get("loop")
        if dev and self.devices.backing_file(dev) == loop_source(image):
            return dev
        if image.block is not None:
            source, offset, size = image.block
            dev = self.devices.attach(source, readonly=readonly, offset=offset, size=size)
        else:
            dev = self.devices.attach(image.path, readonly=readonly)
        self.rec["loop"] = dev
        return dev

    def release_all(self) -> None:
        """Stop the server and detach the loop device this record owns, then forget the record."""
        self.nbd.stop(self.vdi)
        dev = self.rec.get("loop") if self.rec else None
        if dev and self.devices is not None:
            source = loop_source(ImageSpec.from_json(self.rec["image"]))
            if self.devices.backing_file(dev) == source:
                self.devices.detach(dev)
        runtime.remove(self.path)
        self.rec = None

    def _discard_stale(self, rec: Dict[str, Any]) -> None:
        # From another boot: its processes and loop devices are gone (or the numbers now belong to someone else);
        # only files remain. NbdServer.stop does not signal a pid recorded under another boot id.
        self.nbd.stop(self.vdi)
        runtime.remove(self.path)

    def result(self, ex: NbdExport) -> AttachResult:
        assert self.rec is not None
        image = ImageSpec.from_json(self.rec["image"])
        readonly = bool(self.rec["readonly"])
        nbd: List[List[Any]] = [["Nbd", {"uri": ex.params_nbd}], ["Nbd", {"uri": ex.uri}]]
        if image.kind == "vhd":
            return AttachResult(ex.params_nbd, ex.params_nbd, nbd, readonly)
        local: List[List[Any]] = []
        if self.rec.get("loop"):
            local.append(["BlockDevice", {"path": self.rec["loop"]}])
        if not image.is_file:  # an opener's volume: nothing a consumer could open as a file
            return AttachResult(self.rec.get("loop") or ex.params_nbd, ex.params_nbd, local + nbd, readonly)
        # A File consumer could write a read-only VDI: offer it first only for read-write attaches.
        impls = ([["File", {"path": image.path}]] + local + nbd if not readonly
                 else local + nbd + [["File", {"path": image.path}]])
        params = self.rec.get("loop") or image.path
        return AttachResult(params, ex.params_nbd, impls, readonly)


def loop_source(image: ImageSpec) -> str:
    """What a loop device of ``image`` is backed by: the file, or the device holding its region."""
    return image.block[0] if image.block is not None else image.path


def _open(run_dir: str, vdi: str, devices: Optional[BlockDevices]) -> _Vdi:
    return _Vdi(run_dir, vdi, devices)


def attach(vdi: str, image: ImageSpec, *, dp: str, readonly: bool, run_dir: str, block_device: bool = False,
           devices: Optional[BlockDevices] = None) -> AttachResult:
    """Attach ``vdi`` on datapath ``dp``: the disk is served (and usable) when this returns.

    Idempotent for a dp already attached in the same mode. ``block_device`` also sets up a loop device (raw images
    only; ``devices`` overrides how). Raises ``Illegal_transition`` when the VDI is attached in the other mode (on
    this or another dp), :class:`DatapathError` when the server cannot start.
    """
    if block_device and (image.kind != "raw" or not (image.is_file or image.block)):
        raise DatapathError("a block device can only be offered for a raw image on this host (no kernel NBD)")
    want = f"Attached({_mode(readonly)})"
    v = _open(run_dir, vdi, devices or (LoopDevices() if block_device else None))
    with runtime.locked(v.lock):
        v.load()
        if v.rec is not None:
            if bool(v.rec["readonly"]) != readonly:
                current = v.state(dp) if dp in v.dps else f"Attached({_mode(bool(v.rec['readonly']))})"
                raise Illegal_transition(current, want)
            if ImageSpec.from_json(v.rec["image"]) != image:
                raise DatapathError(f"VDI {vdi!r} is attached from {v.rec['image']['path']}, not {image.path}")
        else:
            v.rec = {"vdi": vdi, "boot_id": runtime.boot_id(), "readonly": readonly, "image": image.to_json(),
                     "dps": {}, "loop": None}
        fresh = not v.dps
        try:
            ex = v.ensure_server(image, readonly)
            if block_device:
                v.ensure_loop(image, readonly)
        except BaseException:
            if fresh:
                v.release_all()  # nothing else uses them: leave no half-made server or device behind
            raise
        v.dps.setdefault(dp, want)
        v.save()
        return v.result(ex)


def activate(vdi: str, *, dp: str, run_dir: str) -> None:
    """Mark ``dp`` active; restarts the server if it died since attach (so the disk is really there)."""
    v = _open(run_dir, vdi, None)
    with runtime.locked(v.lock):
        v.load()
        state = v.state(dp)
        if state == DETACHED:
            raise Illegal_transition(DETACHED, "Activated")
        assert v.rec is not None
        v.ensure_server(ImageSpec.from_json(v.rec["image"]), bool(v.rec["readonly"]))
        v.dps[dp] = state.replace("Attached", "Activated")
        v.save()


def deactivate(vdi: str, *, dp: str, run_dir: str) -> None:
    """Flush every write of the VDI to its image and mark ``dp`` attached again (a no-op if it is not active)."""
    v = _open(run_dir, vdi, None)
    with runtime.locked(v.lock):
        v.load()
        state = v.state(dp)
        if not state.startswith("Activated"):
            return
        v.nbd.flush(vdi)
        v.dps[dp] = state.replace("Activated", "Attached")
        v.save()


def detach(vdi: str, *, dp: str, run_dir: str, devices: Optional[BlockDevices] = None) -> None:
    """Forget ``dp``; the last one out stops the server and removes its socket and loop device.

    Never fails for a dp that is not attached. An active dp is flushed first, as a deactivate would.
    """
    v = _open(run_dir, vdi, devices or LoopDevices())
    with runtime.locked(v.lock):
        v.load()
        if dp not in v.dps:
            return
        if v.dps[dp].startswith("Activated"):
            v.nbd.flush(vdi)
        del v.dps[dp]
        if v.dps:
            v.save()
        else:
            v.release_all()


def stat(vdi: str, *, run_dir: str) -> Dict[str, Any]:
    """The VDI's datapaths and server as recorded (for ``VDI.stat`` / ``dp_stat`` and diagnostics)."""
    v = _open(run_dir, vdi, None)
    with runtime.locked(v.lock):
        v.load()
        if v.rec is None:
            return {"dps": {}, "readonly": None, "server": None, "loop": None}
        ex = v.nbd.get(vdi)
        server = None if ex is None else {"pid": ex.pid, "socket": ex.socket, "running": ex.running(),
                                          "uri": ex.uri, "params_nbd": ex.params_nbd, "engine": ex.engine}
        return {"dps": dict(v.dps), "readonly": v.rec["readonly"], "server": server, "loop": v.rec.get("loop")}


def attached(run_dir: str) -> Dict[str, Dict[str, str]]:
    """Every VDI with a record under ``run_dir``: its dps and their states (a snapshot, read without locks)."""
    d = os.path.join(os.path.abspath(run_dir), SUBDIR)
    out: Dict[str, Dict[str, str]] = {}
    for entry in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if entry.endswith(".json"):
            rec = runtime.read_json(os.path.join(d, entry))
            if rec is not None and rec.get("boot_id") == runtime.boot_id():
                out[rec["vdi"]] = dict(rec.get("dps") or {})
    return out


def cleanup_stale(run_dir: str, devices: Optional[BlockDevices] = None) -> List[str]:
    """Drop what a host restart or a killed caller left behind; returns the VDIs whose state was removed.

    Records from another boot are discarded. Servers running without a record (a caller killed between starting
    one and recording it) are stopped. Live datapaths of this boot are left alone.
    """
    d = os.path.join(os.path.abspath(run_dir), SUBDIR)
    cleaned = []
    known = set()
    for entry in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not entry.endswith(".json"):
            continue
        rec = runtime.read_json(os.path.join(d, entry))
        if rec is None:
            continue
        v = _open(run_dir, rec["vdi"], devices or LoopDevices())
        with runtime.locked(v.lock):
            v.load()
            if v.rec is None:
                cleaned.append(rec["vdi"])
            else:
                known.add(rec["vdi"])
    nbd = NbdServer(run_dir)
    for ex in nbd.exports():
        if ex.export not in known:
            v = _open(run_dir, ex.export, None)
            with runtime.locked(v.lock):  # the same lock an attach holds while it starts the server
                if runtime.read_json(v.path) is None:
                    nbd.stop(ex.export)
                    cleaned.append(ex.export)
    return sorted(set(cleaned))


def teardown_all(run_dir: str, devices: Optional[BlockDevices] = None) -> List[str]:
    """Stop every datapath recorded under ``run_dir`` whatever its state (tests, forced SR detach)."""
    d = os.path.join(os.path.abspath(run_dir), SUBDIR)
    done = []
    for entry in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if entry.endswith(".json"):
            rec = runtime.read_json(os.path.join(d, entry))
            if rec is None:
                continue
            v = _open(run_dir, rec["vdi"], devices or LoopDevices())
            with runtime.locked(v.lock):
                v.load()
                if v.rec is not None:
                    v.release_all()
                done.append(rec["vdi"])
    done += _stop_all_servers(run_dir)
    return sorted(set(done))
