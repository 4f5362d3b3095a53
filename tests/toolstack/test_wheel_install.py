"""`smapi classic-install` and `plugin-install` from a wheel install: the executables they write load smapi (and
the `xapi` bindings) from where the wheel put them, never from the source checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest

from tests.wheels import build_wheels

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheels = build_wheels(work, pattern="smapi-*.whl")
    assert len(wheels) == 1, wheels
    site = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheels[0])], check=True,
                   capture_output=True, timeout=300)
    return site


def _from_wheel(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "smapi.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(cwd))


def test_classic_executables_from_a_wheel(wheel_site: Path, tmp_path: Path) -> None:
    target = tmp_path / "sm"
    p = _from_wheel(wheel_site, "classic-install", str(target), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    text = (target / "FileSR").read_text()
    assert str(REPO) + "'" not in text and str(REPO / "bin") not in text  # only the wheel's site is named
    assert repr(str(wheel_site)) in text
    call = xmlrpc.client.dumps(({"command": "sr_get_driver_info", "args": []},), "sr_get_driver_info")
    for name in ("FileSR", "LVMSR", "NFSSR"):
        out = subprocess.run([str(target / name), call], capture_output=True, text=True, timeout=60, cwd="/",
                             env={"PATH": os.environ["PATH"]})
        assert out.returncode == 0, out.stderr
        assert xmlrpc.client.loads(out.stdout)[0][0]["capabilities"]


def test_xapi_bindings_come_with_the_wheel(wheel_site: Path) -> None:
    assert (wheel_site / "xapi" / "storage" / "api" / "v5" / "volume.py").is_file()
    probe = subprocess.run([sys.executable, "-S", "-c", "import xapi.storage.api.v5.volume as v; print(v.__file__)"],
                           capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(wheel_site)}, cwd="/")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(wheel_site))
