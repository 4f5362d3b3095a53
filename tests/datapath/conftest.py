"""Fixtures of the datapath tests: short run directories, VHD chains, and leak checks that run even when a test
fails (finalizers), per test and once for the whole session."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Iterator, List

import pytest

from smapi import datapath
from smapi.datapath import procs

# Every run dir of this session starts with this, so leak checks find exactly our processes and devices.
PREFIX = f"/tmp/smapi-dp-{os.getpid()}-"

REQUIRED_TOOLS = ("nbdkit", "nbdinfo", "nbdcopy", "qemu-img", "qemu-io")


def _missing_tools() -> List[str]:
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    plugin_dirs = ("/usr/lib/x86_64-linux-gnu/nbdkit/plugins", "/usr/lib/aarch64-linux-gnu/nbdkit/plugins",
                   "/usr/lib64/nbdkit/plugins", "/usr/lib/nbdkit/plugins")
    if not any(os.path.exists(os.path.join(d, "nbdkit-python-plugin.so")) for d in plugin_dirs):
        missing.append("nbdkit-plugin-python")
    return missing


def pytest_collection_modifyitems(config, items):
    missing = _missing_tools()
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"missing {', '.join(missing)} (ci/apt-packages.txt)")
    for item in items:
        if "tests/datapath" in str(item.fspath):
            item.add_marker(skip)


def our_nbdkits() -> List[int]:
    """Live nbdkit processes serving a socket under this session's run dirs (whoever their parent is)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = procs.cmdline(int(entry)) or []
            ours = args and os.path.basename(args[0]) == "nbdkit" and any(a.startswith(PREFIX) for a in args)
            if ours and procs.running(int(entry)):
                pids.append(int(entry))
    return pids


def nbdkit_children() -> List[int]:
    """nbdkit processes whose parent is this pytest process, zombies included (a zombie is an unreaped leak)."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and comm == "nbdkit":
            out.append(int(entry))
    return out


def our_loops() -> List[str]:
    out = []
    for dev in os.listdir("/sys/block") if os.path.isdir("/sys/block") else []:
        try:
            with open(f"/sys/block/{dev}/loop/backing_file") as f:
                if f.read().startswith(PREFIX):
                    out.append("/dev/" + dev)
        except OSError:
            continue
    return out


def _kill_leftovers() -> List[str]:
    leaked = []
    for pid in our_nbdkits():
        leaked.append(f"nbdkit pid {pid}")
        procs.terminate(pid, timeout=2)
    for dev in our_loops():
        leaked.append(f"loop {dev}")
        os.system(f"losetup -d {dev}")
    return leaked


@pytest.fixture(scope="session", autouse=True)
def _session_leak_check() -> Iterator[None]:
    yield
    leaked = _kill_leftovers()
    deadline = time.monotonic() + 5
    while nbdkit_children() and time.monotonic() < deadline:
        time.sleep(0.05)  # give the module's own reaping a moment (terminate waits for its children)
    children = nbdkit_children()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    assert not leaked and not children, f"leaked: {leaked}, nbdkit children left: {children}"


@pytest.fixture
def scratch() -> Iterator[str]:
    """A short directory for images and run state (Unix socket paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix=PREFIX)
    try:
        yield path
    finally:
        datapath.teardown_all(os.path.join(path, "run"))
        leaked = _kill_leftovers()
        sockets = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".sock")]
        shutil.rmtree(path, ignore_errors=True)
        assert not leaked, f"test leaked {leaked}"
        assert not sockets, f"test left sockets {sockets}"


@pytest.fixture
def run_dir(scratch: str) -> str:
    return os.path.join(scratch, "run")
