"""The host's configuration of SRs: which SRs this host uses, with which driver and device_config (xapi's PBDs).

It survives reboots, unlike the run state (`$SMAPI_RUN_DIR`, a tmpfs): `smapi sr-attach --all`, run at boot by the
systemd unit below, attaches every SR recorded here. One JSON document per SR, written atomically:

    $SMAPI_STATE_DIR/srs/<sr>.json   {"sr": ..., "driver": "file", "device_config": {...}, "name_label": "..."}

`SMAPI_STATE_DIR` defaults to /var/lib/smapi. `sr-create` and `sr-introduce` add a record, `sr-forget` and
`sr-destroy` remove it, `sr-set-name` keeps the name in it current (names select SRs without a server call).
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from smapi.common.files import read_json, write_json
from smapi.interface.errors import Invalid_argument

ENV = "SMAPI_STATE_DIR"
DEFAULT_STATE_DIR = "/var/lib/smapi"

#: the systemd unit that attaches the recorded SRs at boot (`smapi host-install-unit` writes it)
UNIT_NAME = "smapi-attach.service"
UNIT_TEXT = """\
[Unit]
Description=Attach the SRs recorded in smapi's host configuration
Documentation=man:smapi-sr-attach(1)
After=local-fs.target network-online.target remote-fs.target iscsid.service
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={smapi} sr-attach --all
ExecStop={smapi} sr-detach --all

[Install]
WantedBy=multi-user.target
"""


def state_dir() -> str:
    return os.environ.get(ENV) or DEFAULT_STATE_DIR


@dataclass
class SrRecord:
    sr: str
    driver: str
    device_config: Dict[str, str] = field(default_factory=dict)
    name_label: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"sr": self.sr, "driver": self.driver, "device_config": self.device_config,
                "name_label": self.name_label}

    def where(self) -> str:
        """The storage in a few words, for listings: the path, device or export the device_config names."""
        dc = self.device_config
        if "server" in dc:
            return f"{dc['server']}:{dc.get('serverpath', dc.get('path', ''))}"
        for key in ("path", "device", "target", "location"):
            if key in dc:
                return dc[key]
        return " ".join(f"{k}={v}" for k, v in sorted(dc.items())) or "-"


def _checked_uuid(sr: str) -> str:
    if not sr or "/" in sr or sr.startswith(".") or "\x00" in sr:
        raise Invalid_argument("sr", f"{sr!r} cannot name an SR record")
    return sr


def _srs_dir() -> str:
    return os.path.join(state_dir(), "srs")


def _path(sr: str) -> str:
    return os.path.join(_srs_dir(), _checked_uuid(sr) + ".json")


def driver_spec_to_record(spec: str) -> str:
    """What to record for `-d SPEC`: a file reference made absolute, so it still loads from another directory."""
    path, sep, attr = spec.rpartition(":")
    if sep and path.endswith(".py"):
        return f"{os.path.abspath(path)}:{attr}"
    return spec


def get(sr: str) -> Optional[SrRecord]:
    try:
        doc = read_json(_path(sr))
    except Invalid_argument:
        return None
    if not isinstance(doc, dict):
        return None
    return SrRecord(sr=sr, driver=str(doc.get("driver", "")), device_config=dict(doc.get("device_config") or {}),
                    name_label=str(doc.get("name_label", "")))


def put(record: SrRecord) -> None:
    os.makedirs(_srs_dir(), exist_ok=True)
    write_json(_path(record.sr), record.to_dict())


def remove(sr: str) -> bool:
    """Forget `sr`; False when it was not recorded."""
    try:
        os.unlink(_path(sr))
    except FileNotFoundError:
        return False
    with suppress(OSError):
        from smapi.common.files import fsync_dir

        fsync_dir(_srs_dir())
    return True


def set_name(sr: str, name_label: str) -> None:
    record = get(sr)
    if record is not None:
        record.name_label = name_label
        put(record)


def all_records() -> List[SrRecord]:
    try:
        names = sorted(n[:-5] for n in os.listdir(_srs_dir()) if n.endswith(".json") and ".tmp." not in n)
    except FileNotFoundError:
        return []
    return [r for r in (get(n) for n in names) if r is not None]
