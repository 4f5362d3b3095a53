"""SMAPIv3 (Plugin, SR, Volume, Datapath) served on top of a driver's storage-interface verbs.

A driver written once against the storage interface answers SMAPIv3 per-verb executables through these
implementations; they play the part xapi-storage-script plays in the other direction. A driver that declares
its own v3 implementation for an interface keeps it (see `Driver.implementation_classes`).

Mapping, and why:
* an SMAPIv3 `sr` reference is the SR uuid: SR.create stores it in the returned configuration (`sr_uuid`), and
  SR.attach reads it back, so the toolstack's PBD carries everything needed to attach again;
* a volume `key` is the storage interface's `vdi`;
* volume `keys` (opaque toolstack metadata) live in the VDI's sm_config;
* datapaths use `dp = "v3/<domain>"`, so two domains using one volume follow the storage state rules;
* volume URIs are `smapi://<sr>/<vdi>`, which the Datapath implementation below parses.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, Dict, List, Mapping, Tuple

from smapi.interface.errors import (
    Invalid_argument,
    Missing_configuration_parameter,
    Sr_not_attached,
    Unimplemented,
    Vdi_does_not_exist,
    Volume_does_not_exist,
)
from smapi.interface.skeletons.v3 import Datapath_skeleton, Plugin_skeleton, SR_skeleton, Volume_skeleton

URI_SCHEME = "smapi"


# urllib.parse is imported where it is used: it costs a per-verb executable a few milliseconds (it pulls in
# ipaddress), and only volume and datapath verbs need it.


def volume_uri(sr: str, vdi: str) -> str:
    from urllib.parse import quote

    return f"{URI_SCHEME}://{quote(sr, safe='')}/{quote(vdi, safe='')}"


def parse_volume_uri(uri: str) -> Tuple[str, str]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    if parts.scheme != URI_SCHEME or not parts.netloc or not parts.path.strip("/"):
        raise Invalid_argument("uri", f"expected {URI_SCHEME}://<sr>/<volume>, got {uri!r}")
    return unquote(parts.netloc), unquote(parts.path.strip("/"))


#: xenopsd's backend domain for a VBD; every other domain is a guest, served only by a XenDisk implementation
DOM0 = "0"


def backend_implementations(device: Mapping[str, Any], domain: str) -> List[Any]:
    """The ways to reach an attached disk, most preferred first.

    A guest (any domain but dom0) can only use a Xen disk backend: xenopsd refuses a guest VBD without a
    `XenDisk`. smapi serves every VDI over NBD, which QEMU's qdisk backend opens from its `params`. dom0 itself
    uses the NBD export, or the raw file or device when the VDI is raw.
    """
    implementations: List[Any] = []
    params_nbd = device.get("params_nbd") or ""
    if params_nbd and domain != DOM0:
        implementations.append(["XenDisk", {"params": params_nbd, "extra": {}, "backend_type": "qdisk"}])
    if params_nbd:
        implementations.append(["Nbd", {"uri": params_nbd}])
    params = device.get("params") or ""
    if params.startswith("/dev/"):
        implementations.append(["BlockDevice", {"path": params}])
    elif params.startswith("/"):
        implementations.append(["File", {"path": params}])
    return implementations


#: bytes per bit of the storage interface's changed-block bitmaps
CBT_GRANULARITY = 64 * 1024


def bit_slice(bitmap: bytes, first: int, end: int) -> bytes:
    """Bits [first, end) of an MSB-first bitmap, as a bitmap whose bit 0 is bit `first`."""
    nbytes = -(-max(0, end - first) // 8)
    if first % 8 == 0:  # whole bytes (every call but an unaligned v3 extent): no per-bit loop
        out = bytearray(bitmap[first // 8:first // 8 + nbytes].ljust(nbytes, b"\0"))
        if (end - first) % 8 and out:
            out[-1] &= (0xFF << (8 - (end - first) % 8)) & 0xFF
        return bytes(out)
    out = bytearray(nbytes)
    for i in range(first, end):
        if bitmap[i >> 3] & (0x80 >> (i & 7)):
            j = i - first
            out[j >> 3] |= 0x80 >> (j & 7)
    return bytes(out)


def bit_ranges(bitmap: bytes) -> List[Tuple[int, int]]:
    """(first bit, count) of each run of set bits of an MSB-first bitmap."""
    ranges: List[Tuple[int, int]] = []
    for i, byte in enumerate(bitmap):
        for j in range(8) if byte else ():
            if byte & (0x80 >> j):
                bit = i * 8 + j
                if ranges and sum(ranges[-1]) == bit:
                    ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
                else:
                    ranges.append((bit, 1))
    return ranges


class _OnStorage:
    """Calls the driver's storage-interface verbs through its dispatcher (so they are checked both ways)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def s(self, wire_name: str, dbg: str, **args: Any) -> Any:
        return self.driver.call("storage", wire_name, dbg=dbg, **args)

    @staticmethod
    def to_volume(sr: str, info: Mapping[str, Any]) -> Dict[str, Any]:
        return {
            "key": info["vdi"], "uuid": info["vdi"], "name": info["name_label"],
            "description": info["name_description"],
            # a snapshot is an immutable point in time: SMAPIv3 reports it read-only
            "read_write": not (info["read_only"] or info.get("is_a_snapshot")), "sharable": False,
            "virtual_size": info["virtual_size"], "physical_utilisation": info["physical_utilisation"],
            "uri": [volume_uri(sr, info["vdi"])], "keys": dict(info["sm_config"]),
            # the engine's drivers say it in sm_config (seed 001's vdi_info has no cbt_enabled member)
            "cbt_enabled": bool(info.get("cbt_enabled")) or info["sm_config"].get("cbt_enabled") == "true",
        }


class PluginOnStorage(_OnStorage, Plugin_skeleton):
    def query(self, dbg: str) -> Dict[str, Any]:
        q = self.s("Query.query", dbg)
        # SMAPIv3 calls deletion VDI_DESTROY; xapi-storage-script renames it back to VDI_DELETE.
        features = ["VDI_DESTROY" if f == "VDI_DELETE" else f for f in q["features"]]
        return {
            "plugin": q["driver"], "name": q["name"], "description": q["description"], "vendor": q["vendor"],
            "copyright": q["copyright"], "version": q["version"], "required_api_version": "5.0",
            "features": features, "configuration": q["configuration"], "required_cluster_stack": [],
        }

    def ls(self, dbg: str) -> List[str]:
        return self.s("SR.ls", dbg)

    def diagnostics(self, dbg: str) -> str:
        return self.s("Query.diagnostics", dbg)


class SROnStorage(_OnStorage, SR_skeleton):
    def create(self, dbg: str, uuid: str, configuration: Dict[str, str], name: str,
               description: str) -> Dict[str, str]:
        # What the driver would record at attach (a file SR: an absolute path), so the returned configuration --
        # the toolstack's PBD -- works from any working directory.
        canonical = getattr(self.driver, "canonical_config", None)
        configuration = canonical(configuration) if canonical is not None else dict(configuration)
        self.s("SR.create", dbg, sr=uuid, device_config=configuration, physical_size=0)
        stored = {**configuration, "sr_uuid": uuid}
        if name or description:
            self.s("SR.attach", dbg, sr=uuid, device_config=stored)
            try:
                if name:
                    self.s("SR.set_name_label", dbg, sr=uuid, new_name_label=name)
                if description:
                    self.s("SR.set_name_description", dbg, sr=uuid, new_name_description=description)
            finally:
                self.s("SR.detach", dbg, sr=uuid)
        return stored

    def attach(self, dbg: str, configuration: Dict[str, str]) -> str:
        # A PBD made by SR.create carries sr_uuid; one written by hand may not: the storage then names its SR.
        sr = configuration.get("sr_uuid") or self._probed_sr_uuid(dbg, configuration)
        self.s("SR.attach", dbg, sr=sr, device_config=configuration)
        return sr

    def _probed_sr_uuid(self, dbg: str, configuration: Dict[str, str]) -> str:
        try:
            result = self.s("SR.probe", dbg, device_config=configuration, sm_config={})
        except Unimplemented:
            raise Missing_configuration_parameter("sr_uuid") from None  # a driver that cannot probe
        found = set()
        if isinstance(result, list) and result[0] == "Probe":
            found = {p["sr"]["sr_uuid"] for p in result[1] if p.get("sr") and p["sr"].get("sr_uuid")}
        if len(found) != 1:
            raise Missing_configuration_parameter("sr_uuid")  # none, or several SRs: the caller must choose
        return found.pop()

    def detach(self, dbg: str, sr: str) -> None:
        # SMAPIv3's SR.detach is idempotent: detaching a detached SR is done already.
        with suppress(Sr_not_attached):
            self.s("SR.detach", dbg, sr=sr)

    def destroy(self, dbg: str, sr: str) -> None:
        self.s("SR.destroy", dbg, sr=sr)

    def stat(self, dbg: str, sr: str) -> Dict[str, Any]:
        info = self.s("SR.stat", dbg, sr=sr)
        health = info["health"]
        return {
            "sr": sr, "name": info["name_label"], "uuid": info.get("sr_uuid") or sr,
            "description": info["name_description"], "free_space": info["free_space"],
            "total_space": info["total_space"], "datasources": [], "clustered": info["clustered"],
            "health": [health if isinstance(health, str) else health[0], ""],
        }

    def set_name(self, dbg: str, sr: str, new_name: str) -> None:
        self.s("SR.set_name_label", dbg, sr=sr, new_name_label=new_name)

    def set_description(self, dbg: str, sr: str, new_description: str) -> None:
        self.s("SR.set_name_description", dbg, sr=sr, new_name_description=new_description)

    def ls(self, dbg: str, sr: str) -> List[Dict[str, Any]]:
        return [self.to_volume(sr, v) for v in self.s("SR.scan", dbg, sr=sr)]

    def probe(self, dbg: str, configuration: Dict[str, str]) -> List[Dict[str, Any]]:
        result = self.s("SR.probe", dbg, device_config=configuration, sm_config={})
        if isinstance(result, list) and result[0] == "Probe":
            out = []
            for p in result[1]:
                entry = {"configuration": p["configuration"], "complete": p["complete"],
                         "extra_info": p.get("extra_info", {})}
                sr_info = p.get("sr")
                if sr_info:
                    uuid = sr_info.get("sr_uuid") or ""
                    entry["configuration"] = {**p["configuration"], "sr_uuid": uuid}
                    entry["sr"] = {
                        "sr": uuid, "name": sr_info["name_label"], "uuid": uuid or None,
                        "description": sr_info["name_description"], "free_space": sr_info["free_space"],
                        "total_space": sr_info["total_space"], "datasources": [], "clustered": sr_info["clustered"],
                        "health": ["Healthy", ""],
                    }
                out.append(entry)
            return out
        return [{"configuration": configuration, "complete": False, "extra_info": {"raw": result[1]}}]


class VolumeOnStorage(_OnStorage, Volume_skeleton):
    def s(self, wire_name: str, dbg: str, **args: Any) -> Any:
        try:
            return super().s(wire_name, dbg, **args)
        except Vdi_does_not_exist as e:
            # SMAPIv3 names a missing volume Volume_does_not_exist (xapi-storage-script matches on it).
            key = args.get("vdi") or (args.get("vdi_info") or {}).get("vdi") or e.params[0]
            raise Volume_does_not_exist(key) from None

    def _stat(self, dbg: str, sr: str, key: str) -> Dict[str, Any]:
        return self.s("VDI.stat", dbg, sr=sr, vdi=key)

    def create(self, dbg: str, sr: str, name: str, description: str, size: int, sharable: bool) -> Dict[str, Any]:
        if sharable:
            # Refused rather than dropped: smapi serves a volume read-write from one host at a time.
            raise Unimplemented("Volume.create with sharable=true (volumes are used read-write by one host at a "
                                "time; create it with sharable=false)")
        info = self.s("VDI.create", dbg, sr=sr, vdi_info={"name_label": name, "name_description": description,
                                                          "virtual_size": size})
        return self.to_volume(sr, info)

    def snapshot(self, dbg: str, sr: str, key: str) -> Dict[str, Any]:
        return self.to_volume(sr, self.s("VDI.snapshot", dbg, sr=sr, vdi_info=self._stat(dbg, sr, key)))

    def clone(self, dbg: str, sr: str, key: str) -> Dict[str, Any]:
        return self.to_volume(sr, self.s("VDI.clone", dbg, sr=sr, vdi_info=self._stat(dbg, sr, key)))

    def copy(self, dbg: str, sr: str, key: str, dest_sr: str) -> Dict[str, Any]:
        new_vdi = self.s("VDI.copy", dbg, sr=sr, vdi=key, url="", dest=dest_sr)
        return self.to_volume(dest_sr, self.s("VDI.stat", dbg, sr=dest_sr, vdi=new_vdi))

    def destroy(self, dbg: str, sr: str, key: str) -> None:
        self.s("VDI.destroy", dbg, sr=sr, vdi=key)

    def set_name(self, dbg: str, sr: str, key: str, new_name: str) -> None:
        self.s("VDI.set_name_label", dbg, sr=sr, vdi=key, new_name_label=new_name)

    def set_description(self, dbg: str, sr: str, key: str, new_description: str) -> None:
        self.s("VDI.set_name_description", dbg, sr=sr, vdi=key, new_name_description=new_description)

    def set(self, dbg: str, sr: str, key: str, k: str, v: str) -> None:
        self.s("VDI.add_to_sm_config", dbg, sr=sr, vdi=key, key=k, value=v)

    def unset(self, dbg: str, sr: str, key: str, k: str) -> None:
        self.s("VDI.remove_from_sm_config", dbg, sr=sr, vdi=key, key=k)

    def resize(self, dbg: str, sr: str, key: str, new_size: int) -> None:
        self.s("VDI.resize", dbg, sr=sr, vdi=key, new_size=new_size)

    def stat(self, dbg: str, sr: str, key: str) -> Dict[str, Any]:
        return self.to_volume(sr, self._stat(dbg, sr, key))

    def similar_content(self, dbg: str, sr: str, key: str) -> List[str]:
        return [v["vdi"] for v in self.s("VDI.similar_content", dbg, sr=sr, vdi=key)]

    # -- changed-block tracking: the storage interface's verbs; bitmaps have one bit per 64 KiB block, the
    # first block in the most significant bit of the first byte (as sm and xapi encode them)
    def _cbt(self, v3_verb: str, wire_name: str, dbg: str, **args: Any) -> Any:
        try:
            return self.s(wire_name, dbg, **args)
        except Unimplemented:
            # a driver without the storage verb: the caller asked for the SMAPIv3 one
            raise Unimplemented(f"Volume.{v3_verb}") from None

    def enable_cbt(self, dbg: str, sr: str, key: str) -> None:
        self._cbt("enable_cbt", "VDI.enable_cbt", dbg, sr=sr, vdi=key)

    def disable_cbt(self, dbg: str, sr: str, key: str) -> None:
        self._cbt("disable_cbt", "VDI.disable_cbt", dbg, sr=sr, vdi=key)

    def data_destroy(self, dbg: str, sr: str, key: str) -> None:
        self._cbt("data_destroy", "VDI.data_destroy", dbg, sr=sr, vdi=key)

    def list_changed_blocks(self, dbg: str, sr: str, key: str, key2: str, offset: int,
                            length: int) -> Dict[str, Any]:
        import base64

        if offset < 0:
            raise Invalid_argument("offset", f"{offset} is negative")
        bitmap = base64.b64decode(self._cbt("list_changed_blocks", "VDI.list_changed_blocks", dbg, sr=sr,
                                            vdi_from=key, vdi_tp=key2))
        nbits = len(bitmap) * 8
        # The extent widened to whole blocks; a negative length means "to the end" (xapi-storage-script's -1).
        first = min(offset // CBT_GRANULARITY, nbits)
        end = nbits if length < 0 else min(nbits, -(-(offset + length) // CBT_GRANULARITY))
        return {"granularity": CBT_GRANULARITY, "bitmap": base64.b64encode(bit_slice(bitmap, first, end)).decode()}

    def compare(self, dbg: str, sr: str, key: str, key2: str) -> Dict[str, Any]:
        import base64

        bitmap = base64.b64decode(self._cbt("compare", "VDI.compare", dbg, sr=sr, vdi=key, vdi2=key2))
        return {"blocksize": CBT_GRANULARITY, "ranges": bit_ranges(bitmap)}


class DatapathOnStorage(_OnStorage, Datapath_skeleton):
    @staticmethod
    def _dp(domain: str) -> str:
        return f"v3/{domain}"

    def open(self, dbg: str, uri: str, persistent: bool) -> None:
        sr, vdi = parse_volume_uri(uri)
        self.s("VDI.set_persistent", dbg, sr=sr, vdi=vdi, persistent=persistent)
        self.s("VDI.epoch_begin", dbg, sr=sr, vdi=vdi)

    def attach(self, dbg: str, uri: str, domain: str) -> Dict[str, Any]:
        sr, vdi = parse_volume_uri(uri)
        device = self.s("VDI.attach", dbg, dp=self._dp(domain), sr=sr, vdi=vdi, read_write=True)
        implementations = backend_implementations(device, domain)
        if not implementations:
            raise Vdi_does_not_exist(f"{vdi} (the driver's attach gave no usable path: {device['params']!r})")
        return {"implementations": implementations}

    def activate(self, dbg: str, uri: str, domain: str) -> None:
        sr, vdi = parse_volume_uri(uri)
        self.s("VDI.activate", dbg, dp=self._dp(domain), sr=sr, vdi=vdi)

    activate_readonly = activate

    def deactivate(self, dbg: str, uri: str, domain: str) -> None:
        sr, vdi = parse_volume_uri(uri)
        self.s("VDI.deactivate", dbg, dp=self._dp(domain), sr=sr, vdi=vdi)

    def detach(self, dbg: str, uri: str, domain: str) -> None:
        sr, vdi = parse_volume_uri(uri)
        self.s("VDI.detach", dbg, dp=self._dp(domain), sr=sr, vdi=vdi)

    def close(self, dbg: str, uri: str) -> None:
        sr, vdi = parse_volume_uri(uri)
        self.s("VDI.epoch_end", dbg, sr=sr, vdi=vdi)
        if not self.s("VDI.stat", dbg, sr=sr, vdi=vdi).get("persistent", True):
            # open(persistent=false) promised that writes vanish when the disk is closed: drop them now (the
            # reset epoch_begin does), so a later persistent open cannot keep them.
            self.s("VDI.epoch_begin", dbg, sr=sr, vdi=vdi)
            self.s("VDI.set_persistent", dbg, sr=sr, vdi=vdi, persistent=True)

