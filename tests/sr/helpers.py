"""A small harness around a file SR for the engine's own tests: calls through the dispatcher, data through
open_vdi, checksums, and the structural checks every test ends with."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any, Dict, List

from smapi.core.driver import load_driver
from smapi.sr.directory import DirectorySubstrate
from smapi.sr.records import SrDocument
from smapi.vhd import check

MiB = 1 << 20
SR_UUID = "0f5e5e6c-5a8e-4d0a-9f43-1c2d3e4f5a6b"


def pattern(seed: Any, length: int) -> bytes:
    return random.Random(repr(seed)).randbytes(length)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileSR:
    """One file SR at `path`, used through a fresh driver instance (as every per-verb process would)."""

    def __init__(self, path: str, sr: str = SR_UUID) -> None:
        self.path = path
        self.sr = sr
        self.device_config = {"path": path}
        self.reload()

    def reload(self) -> None:
        self.driver = load_driver("smapi.drivers.file:FileDriver")
        self.dispatcher = self.driver.dispatcher("storage")

    def call(self, verb: str, **args: Any) -> Any:
        return self.dispatcher.call(verb, {"dbg": "tests/sr", **args})

    def v(self, verb: str, **args: Any) -> Any:
        return self.call(verb, sr=self.sr, **args)

    def create_sr(self) -> None:
        self.call("SR.create", sr=self.sr, device_config=self.device_config, physical_size=0)

    def attach(self) -> None:
        self.call("SR.attach", sr=self.sr, device_config=self.device_config)

    def create(self, size: int = 4 * MiB, **fields: Any) -> str:
        return self.v("VDI.create", vdi_info={"virtual_size": size, **fields})["vdi"]

    def stat(self, vdi: str) -> Dict[str, Any]:
        return self.v("VDI.stat", vdi=vdi)

    def snapshot(self, vdi: str) -> str:
        return self.v("VDI.snapshot", vdi_info=self.stat(vdi))["vdi"]

    def clone(self, vdi: str) -> str:
        return self.v("VDI.clone", vdi_info=self.stat(vdi))["vdi"]

    def scan(self) -> Dict[str, Dict[str, Any]]:
        return {i["vdi"]: i for i in self.v("SR.scan")}

    def write(self, vdi: str, offset: int, data: bytes) -> None:
        with self.driver.open_vdi(self.sr, vdi, writable=True) as h:
            h.write(offset, data)
            h.flush()

    def read_all(self, vdi: str) -> bytes:
        with self.driver.open_vdi(self.sr, vdi) as h:
            return b"".join(h.read(off, min(4 * MiB, h.size - off)) for off in range(0, h.size, 4 * MiB))

    def digests(self) -> Dict[str, str]:
        return {vdi: sha(self.read_all(vdi)) for vdi in self.scan()}

    def document(self) -> SrDocument:
        raw = DirectorySubstrate(self.path).load_document("sr")
        assert raw is not None
        return SrDocument.from_dict(raw)

    def assert_consistent(self) -> None:
        """Every record has its volume and no volume lacks a record; VHDs pass check; no journal is left;
        the VHD parent links agree with the document."""
        doc = self.document()
        volumes = set(DirectorySubstrate(self.path).list_volumes())
        assert volumes == {r.volume for r in doc.vdis.values()}, (volumes, doc.vdis.keys())
        assert os.listdir(os.path.join(self.path, ".journal")) == []
        problems: List[str] = []
        for rec in doc.vdis.values():
            if rec.format != "vhd":
                continue
            report = check(os.path.join(self.path, rec.volume))
            if not report.ok:
                problems.append(f"{rec.volume}: {report.errors}")
            from smapi.vhd import info

            parent_name = info(os.path.join(self.path, rec.volume), count_blocks=False).parent_name
            expected = doc.vdis[rec.parent].volume if rec.parent else None
            if parent_name != expected:
                problems.append(f"{rec.volume}: VHD parent {parent_name}, document says {expected}")
        assert not problems, problems
