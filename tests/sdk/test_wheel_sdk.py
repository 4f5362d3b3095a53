"""The package as a vendor and an admin get it: a wheel installed non-editable into a fresh venv.

One module-scoped venv: smapi's wheel and an outside driver package (tests/sdk/outside_driver, on EngineDriver,
with its own `smapi.drivers` entry point) are installed with `pip --no-deps --no-index`; the dependencies are the
ones already installed for the tests, reached through a .pth file (smapi's own checkout and editable install are
left out, so every smapi module comes from the wheel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Dict, Optional

import pytest

from tests.wheels import build_wheels

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = Path(__file__).resolve().parent / "outside_driver"
pytestmark = pytest.mark.slow

#: entries of the test venv's site-packages that belong to smapi itself (its editable install)
OWN = ("smapi", "__editable__", "_smapi", "xapi", "outsidesr")


def _deps_dir(work: Path) -> Path:
    """A directory of links to every installed distribution except smapi itself."""
    deps = work / "deps"
    deps.mkdir()
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        if entry.suffix == ".pth" or entry.name.lower().startswith(OWN):
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    work = tmp_path_factory.mktemp("sdk-wheel")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheels = build_wheels(work, OUTSIDE)
    assert len(wheels) == 2, wheels
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "test-deps.pth").write_text(str(_deps_dir(work)) + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", *map(str, wheels)],
                   check=True, capture_output=True, timeout=300)
    return {"python": python, "bin": venv / "bin", "site": Path(purelib), "work": work}


def _run(fresh: Dict[str, Path], *argv: str, timeout: int = 600,
         extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SMAPI_CONFORMANCE"))}
    env.update(extra_env or {})
    env["PATH"] = f"{fresh['bin']}:{env['PATH']}"
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=str(fresh["work"]),
                          env=env)


def test_the_wheel_carries_everything(fresh: Dict[str, Path]) -> None:
    here = fresh["site"] / "smapi"
    for part in ("py.typed", "testing/conformance/test_vdi.py", "examples/dirsr.py", "examples/tinysr.py"):
        assert (here / part).is_file(), f"the wheel lacks smapi/{part}"
    probe = _run(fresh, str(fresh["python"]), "-c", "import smapi, click; print(smapi.__file__)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(fresh["site"])), "smapi must come from the wheel, not the checkout"
    plugins = fresh["work"] / "plugins"
    written = _run(fresh, "smapi", "transfer-plugin-install", str(plugins))
    assert written.returncode == 0, written.stderr
    text = (plugins / "transfer").read_text()
    assert text.startswith(f"#!{fresh['python']}") and str(REPO) not in text
    assert os.access(plugins / "transfer", os.X_OK)


def test_the_demo_passes_from_the_wheel(fresh: Dict[str, Path]) -> None:
    demo = _run(fresh, str(fresh["python"]), "-m", "smapi.demo", str(fresh["work"] / "demo-sr"))
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "demo finished: every read matched" in demo.stdout


def test_conformance_passes_on_an_outside_engine_driver(fresh: Dict[str, Path]) -> None:
    run = _run(fresh, "smapi", "conformance", "--driver", "outsidesr", "-n", "2", "-q", timeout=1200)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout and "skipped" not in run.stdout


def test_conformance_reports_the_features_a_skeleton_driver_does_not_declare(fresh: Dict[str, Path]) -> None:
    run = _run(fresh, "smapi", "conformance", "--driver", "dirsr", "-k", "snapshot or clone or resize")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "the driver does not declare VDI_SNAPSHOT" in run.stdout
    assert "the driver does not declare VDI_RESIZE" in run.stdout
    assert "failed" not in run.stdout  # the tests dirsr can run (argument checking) pass


def test_a_new_admin_session_from_the_wheel(fresh: Dict[str, Path], tmp_path: Path) -> None:
    """Issue 18's admin walk-through with the non-editable install: `-d` once, then names; a reboot (run directory
    emptied) and `sr-attach --all` bring everything back."""
    state, run, sr_path = tmp_path / "state", tmp_path / "run", tmp_path / "sr"
    sr_path.mkdir()
    env_vars = {"SMAPI_STATE_DIR": str(state), "SMAPI_RUN_DIR": str(run), "SMAPI_LOG": "off"}

    def smapi(*args: str) -> str:
        done = _run(fresh, str(fresh["bin"] / "smapi"), *args, timeout=120, extra_env=env_vars)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    sr = smapi("sr-create", "-d", "file", "-c", f"path={sr_path}", "--name", "lab").strip()
    vdi = smapi("vdi-create", "--sr", "lab", "--size", "2M", "--name", "web").strip()
    data = tmp_path / "in.raw"
    data.write_bytes(bytes(range(256)) * (2 * 4096))
    smapi("vdi-import", "--sr", "lab", "web", str(data))
    snap = smapi("vdi-snapshot", "--sr", "lab", "web", "--name", "web-snap").strip()
    assert {"web", "web-snap"} <= set(smapi("vdi-list", "--sr", "lab").split())
    smapi("sr-detach", "--all")
    shutil.rmtree(run)
    assert smapi("sr-attach", "--all").strip() == f"attached {sr} (lab)"
    out = tmp_path / "out.raw"
    smapi("vdi-export", "--sr", "lab", "web-snap", str(out))
    assert out.read_bytes() == data.read_bytes()
    smapi("vdi-destroy", "--sr", "lab", "web-snap")
    smapi("vdi-destroy", "--sr", "lab", "web")
    assert vdi and snap and smapi("vdi-list", "--sr", "lab", "--json").strip() == "[]"
