"""Running lvm2's command-line tools in isolation and reading their JSON reports.

Every command runs with:

* ``LVM_SYSTEM_DIR`` pointing at a generated lvm.conf, so the host's /etc/lvm (its filters, devices file,
  archive and backup directories) is neither read nor written;
* ``--devices`` listing only the SR's block devices, so a command never scans or touches another volume group on
  the machine (loop devices are machine-global and other jobs may own some). An :class:`Lvm` without devices
  cannot be made: lvm without ``--devices`` scans (and a ``vgremove -ff`` destroys) everything it finds;
* ``activation=0`` when the kernel has no device-mapper: metadata commands then work, and data is reached through
  the segment map instead (see :mod:`smapi.drivers.lvm.segmap`).

Reports are read with ``--reportformat json --units b --nosuffix`` (byte counts as integer strings); nothing here
parses LVM's on-disk metadata. Failures become :class:`Backend_error` values carrying lvm's own message.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterable, List, Optional, Sequence

from smapi.common import commands
from smapi.common.files import atomic_write
from smapi.interface.errors import Backend_error

#: lines lvm prints on stderr that are expected in our configuration and say nothing about the outcome
_NOISE = (
    "Activation disabled",
    "not zeroed",
    "NOT backed up",
    "Skipping zeroing and wip",
    "leaked on lvm invocation",
    "device-mapper",
    "/dev/mapper/control",
    "Failure to communicate with kernel",
    "Incompatible libdevmapper",
)

#: classic error names by command, for failures no more specific rule explains
_DEFAULT_ERROR = {
    "lvcreate": "LVMCreate",
    "lvresize": "LVMResize",
    "lvextend": "LVMResize",
    "lvreduce": "LVMResize",
    "lvremove": "LVMDelete",
    "lvrename": "LVMCreate",
    "lvchange": "LVMMount",
    "vgcreate": "LVMGroupCreate",
    "vgextend": "LVMGroupCreate",
    "pvcreate": "LVMPartCreate",
}


def device_mapper_available() -> bool:
    """True when the kernel answers on /dev/mapper/control (opening it gives ENODEV without the dm module)."""
    try:
        fd = os.open("/dev/mapper/control", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def lvm_conf(activation: bool) -> str:
    """The private configuration. Metadata archives and backups are off: the VG is the SR's only record and
    /etc/lvm must stay untouched; udev is never consulted (CI machines have no udevd)."""
    return (
        "config { checks = 1 }\n"
        "global {\n"
        f"    activation = {1 if activation else 0}\n"
        "    use_lvmlockd = 0\n"
        "    use_lvmpolld = 0\n"
        "    event_activation = 0\n"
        "}\n"
        "activation {\n"
        "    udev_sync = 0\n"
        "    udev_rules = 0\n"
        "    monitoring = 0\n"
        "    verify_udev_operations = 0\n"
        "}\n"
        "devices {\n"
        "    obtain_device_list_from_udev = 0\n"
        '    external_device_info_source = "none"\n'
        "    use_devicesfile = 0\n"
        # /run/lvm/hints is machine-wide: a command of another SR (other --devices) rewrites it, and a command
        # trusting it then skips our PVs ("Volume group not found" under concurrent lvm use). Always scan.
        '    hints = "none"\n'
        "}\n"
        "backup {\n"
        "    backup = 0\n"
        "    archive = 0\n"
        "}\n"
        "log { verbose = 0 }\n"
    )


def ensure_config_dir(directory: str, activation: bool) -> str:
    """Write ``<directory>/lvm.conf`` if it is missing or different; return the directory."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "lvm.conf")
    text = lvm_conf(activation)
    try:
        with open(path) as f:
            if f.read() == text:
                return directory
    except FileNotFoundError:
        pass
    # Written aside and renamed: a concurrent lvm process must never read half a config.
    atomic_write(path, text)
    return directory


def meaningful_lines(stderr: str) -> List[str]:
    """stderr without the warnings our configuration causes by design."""
    out = []
    for line in stderr.splitlines():
        line = line.strip()
        if line and not any(n in line for n in _NOISE):
            out.append(line)
    return out


def classify(command: str, lines: Sequence[str]) -> str:
    """The classic error name for a failed ``command`` given its meaningful stderr lines."""
    text = "\n".join(lines).lower()
    if "insufficient free space" in text or "insufficient suitable allocatable extents" in text:
        return "SRNoSpace"
    if "lock" in text and any(s in text for s in ("can't get", "failed to", "lock failed", "timed out")):
        return "LockErr"
    if "volume group" in text and "not found" in text:
        return "SRUnavailable"
    if "couldn't find device" in text or "missing pv" in text or "missing physical volume" in text:
        return "SRUnavailable"
    if any(s in text for s in ("no device found", "device not found", "cannot use /dev", "not a block device",
                               "failed to find device", "device excluded", "no such file")):
        return "ConfigDeviceInvalid"
    return _DEFAULT_ERROR.get(command, "SRUnavailable")


def lvm_error(command: str, rc: int, stderr: str) -> Backend_error:
    lines = meaningful_lines(stderr)
    # The first meaningful line is lvm's own statement of the problem; later ones are consequences.
    detail = lines[0] if lines else f"{command} exited with status {rc}"
    err = Backend_error.classic(classify(command, lines), detail)
    err.lvm_command = command  # type: ignore[attr-defined]
    err.lvm_stderr = lines  # type: ignore[attr-defined]
    return err


class Lvm:
    """lvm2 restricted to a set of block devices, with a private configuration directory."""

    def __init__(self, devices: Iterable[str], config_dir: str, *, activation: Optional[bool] = None,
                 timeout: float = 120.0) -> None:
        self.devices = [d for d in devices if d]
        if not self.devices:
            # Without --devices lvm scans every block device the host has: a report would list other SRs' (other
            # tests') volume groups and a vgremove/pvremove would destroy them. Nothing here may run unrestricted.
            raise Backend_error.classic("ConfigDeviceMissing", "lvm needs the list of devices it may touch")
        self.activation = device_mapper_available() if activation is None else activation
        self.config_dir = ensure_config_dir(config_dir, self.activation)
        self.timeout = timeout

    def _env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["LVM_SYSTEM_DIR"] = self.config_dir
        env["LVM_SUPPRESS_FD_WARNINGS"] = "1"
        env["LC_ALL"] = "C"  # messages are matched in classify(): keep them untranslated
        return env

    def run(self, command: str, *args: str) -> str:
        """Run ``lvm <command> --devices ... args``; return stdout or raise the mapped Backend_error."""
        argv = ["lvm", command, "--devices", ",".join(self.devices), *args]
        try:
            proc = commands.run(argv, env=self._env(), timeout=self.timeout, check=False)
        except commands.CommandNotFound as e:
            raise Backend_error.classic("SRUnavailable", "lvm2 is not installed (no lvm command)") from e
        except commands.CommandTimedOut as e:
            raise Backend_error.classic("LockErr", f"lvm {command} did not finish in {self.timeout:.0f}s") from e
        if proc.returncode != 0:
            raise lvm_error(command, proc.returncode, proc.stderr)
        return proc.stdout

    def report(self, command: str, fields: Sequence[str], *args: str, segments: bool = False) -> List[Dict[str, str]]:
        """Rows of a ``pvs``/``vgs``/``lvs`` JSON report (values are strings; sizes in bytes)."""
        extra = ["--segments"] if segments else []
        out = self.run(command, "--reportformat", "json", "--units", "b", "--nosuffix", *extra,
                       "-o", ",".join(fields), *args)
        return parse_report(out)

    # -- convenience wrappers used by the substrate ---------------------------------------------------------
    def pvs(self, fields: Sequence[str], *args: str) -> List[Dict[str, str]]:
        return self.report("pvs", fields, *args)

    def vgs(self, fields: Sequence[str], *args: str) -> List[Dict[str, str]]:
        return self.report("vgs", fields, *args)

    def lvs(self, fields: Sequence[str], *args: str, segments: bool = False) -> List[Dict[str, str]]:
        return self.report("lvs", fields, *args, segments=segments)


def parse_report(text: str) -> List[Dict[str, str]]:
    """Flatten ``{"report": [{"lv": [rows]}]}`` (any object kind) into its rows."""
    if not text.strip():
        return []
    doc = json.loads(text)
    rows: List[Dict[str, str]] = []
    for part in doc.get("report", []):
        for value in part.values():
            rows.extend(value)
    return rows


def size_arg(nbytes: int) -> str:
    """An exact ``-L`` size in bytes (lvm rounds it up to whole extents)."""
    return f"{nbytes}b"


def tags_of(row: Dict[str, str], key: str = "lv_tags") -> List[str]:
    value = row.get(key, "")
    return [t for t in value.split(",") if t]

