"""The one atomic write: the order of its steps, what a failure or a crash at each step leaves, ENOSPC on a real
small file system, and the sweep of temporary files whose writer is gone."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smapi.common import files

REPO = Path(__file__).resolve().parent.parent.parent

#: a child that writes with atomic_write and records, in order, every fsync (of a file or a directory) and rename;
#: at the step named in argv[3] it dies as a SIGKILL would (os._exit: no cleanup, no finally blocks)
CHILD = textwrap.dedent("""
    import os, stat, sys
    from smapi.common import files

    path, data, die_at = sys.argv[1], sys.argv[2], sys.argv[3]
    real_fsync, real_replace = os.fsync, os.replace

    def step(name):
        print(name, flush=True)
        if name == die_at:
            os._exit(9)

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        step("before-fsync-" + kind)
        real_fsync(fd)
        step("after-fsync-" + kind)

    def replace(src, dst):
        step("before-rename")
        real_replace(src, dst)
        step("after-rename")

    os.fsync, os.replace = fsync, replace
    files.atomic_write(path, data)
    print("done", flush=True)
""")


def _write_in_child(path: Path, data: str, die_at: str = "") -> list:
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), data, die_at], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert res.returncode == (9 if die_at else 0), res.stderr
    return res.stdout.split()


def _temps(directory: Path) -> list:
    return sorted(n for n in os.listdir(directory) if ".tmp." in n)


def test_the_steps_come_in_the_documented_order(tmp_path):
    target = tmp_path / "doc.json"
    target.write_text("old")
    steps = _write_in_child(target, "new")
    assert steps == ["before-fsync-file", "after-fsync-file", "before-rename", "after-rename", "before-fsync-dir",
                     "after-fsync-dir", "done"]
    assert target.read_text() == "new"
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("die_at", ["before-fsync-file", "after-fsync-file", "before-rename"])
def test_a_writer_killed_before_the_rename_leaves_the_old_content_and_a_temp_file_the_sweep_removes(tmp_path,
                                                                                                    die_at):
    target = tmp_path / "doc.json"
    target.write_text("old")
    _write_in_child(target, "new", die_at)
    assert target.read_text() == "old"
    left = _temps(tmp_path)
    assert len(left) == 1 and files.TEMP_PATTERN.match(left[0]).group("target") == "doc.json"
    assert files.sweep_temp_files(str(tmp_path)) == left
    assert _temps(tmp_path) == [] and target.read_text() == "old"


@pytest.mark.parametrize("die_at", ["after-rename", "before-fsync-dir"])
def test_a_writer_killed_after_the_rename_leaves_the_new_content(tmp_path, die_at):
    target = tmp_path / "doc.json"
    target.write_text("old")
    _write_in_child(target, "new", die_at)
    assert target.read_text() == "new"
    assert _temps(tmp_path) == []


def test_a_failure_inside_the_writer_keeps_the_old_content_and_no_temp_file(tmp_path):
    target = tmp_path / "doc"
    files.atomic_write(str(target), b"old")
    with pytest.raises(RuntimeError), files.atomic_writer(str(target)) as f:
        f.write(b"half of the new")
        raise RuntimeError("the producer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["doc"]


def test_a_failed_rename_removes_the_temp_file(tmp_path):
    target = tmp_path / "a-directory"
    target.mkdir()  # a file cannot be renamed over a directory: the last step before commit fails
    with pytest.raises(IsADirectoryError):
        files.atomic_write(str(target), "x")
    assert os.listdir(tmp_path) == ["a-directory"]


def test_mode_is_exact_and_json_round_trips(tmp_path):
    old = os.umask(0o077)
    try:
        files.atomic_write(str(tmp_path / "launcher"), "#!/bin/sh\n", mode=0o755)
        files.write_json(str(tmp_path / "state.json"), {"b": 1, "a": [1, 2]}, mode=0o600)
        files.atomic_write(str(tmp_path / "plain"), "x")
    finally:
        os.umask(old)
    assert (tmp_path / "launcher").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o600  # 0o666 minus the umask, as open() gives
    assert files.read_json(str(tmp_path / "state.json")) == {"a": [1, 2], "b": 1}
    assert files.read_json(str(tmp_path / "missing.json")) is None
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": [1, 2], "b": 1}


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs, unmounted afterwards even when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_enospc_keeps_the_old_content_and_leaves_no_temp_file(small_fs):
    target = small_fs / "sr.json"
    files.write_json(str(target), {"generation": 1})
    with pytest.raises(OSError) as e:
        files.atomic_write(str(target), b"x" * (1024 * 1024))
    assert e.value.errno == errno.ENOSPC
    assert files.read_json(str(target)) == {"generation": 1}
    assert os.listdir(small_fs) == ["sr.json"]
    files.write_json(str(target), {"generation": 2})  # the space the failed write took is back
    assert files.read_json(str(target)) == {"generation": 2}


def test_enospc_while_streaming_through_the_writer(small_fs):
    target = small_fs / "chunk.gz"
    with pytest.raises(OSError) as e, files.atomic_writer(str(target)) as f:
        for _ in range(64):
            f.write(os.urandom(16384))
    assert e.value.errno == errno.ENOSPC
    assert os.listdir(small_fs) == []


def _temp_of(directory: Path, target: str, pid: int, host: str = "") -> Path:
    name = f"{target}.tmp.{host or files.host_tag()}.{pid}.{os.urandom(4).hex()}"
    assert files.TEMP_PATTERN.match(name)
    path = directory / name
    path.write_text("partial")
    return path


def test_the_sweep_removes_only_temp_files_whose_writer_is_gone(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    with subprocess.Popen(["sleep", "60"]) as live:
        try:
            time.sleep(0.05)
            keep_live = _temp_of(tmp_path, "a.json", live.pid)
            keep_ours = _temp_of(tmp_path, "b.json", os.getpid())
            gone = _temp_of(tmp_path, "c.json", dead.pid)
            # A pid that now belongs to a process started after the file was last written: the writer is gone.
            reused = _temp_of(tmp_path, "d.json", live.pid)
            os.utime(reused, (time.time() - 600, time.time() - 600))
            foreign_new = _temp_of(tmp_path, "e.json", 1, host="0badf00d" if files.host_tag() != "0badf00d" else "0")
            foreign_old = _temp_of(tmp_path, "f.json", 1, host="0badf00d" if files.host_tag() != "0badf00d" else "0")
            os.utime(foreign_old, (time.time() - 2 * files.FOREIGN_AGE,) * 2)
            legacy_old = tmp_path / "sr.json.tmp.4242.140000"
            legacy_old.write_text("x")
            os.utime(legacy_old, (time.time() - 2 * files.FOREIGN_AGE,) * 2)
            unrelated = [tmp_path / "sr.json", tmp_path / "x.vhd", tmp_path / "notes.tmp"]
            for p in unrelated:
                p.write_text("keep")
            removed = files.sweep_temp_files(str(tmp_path))
        finally:
            live.kill()
    assert sorted(removed) == sorted(p.name for p in (gone, reused, foreign_old, legacy_old))
    for p in (keep_live, keep_ours, foreign_new, *unrelated):
        assert p.exists(), p.name
    assert files.sweep_temp_files(str(tmp_path / "no-such-dir")) == []


@given(st.text(alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1,
               max_size=60).filter(lambda n: n not in (".", "..")))
def test_every_temp_name_names_its_target_and_writer(name):
    tmp = files.temp_path(os.path.join("/some/dir", name))
    assert os.path.dirname(tmp) == "/some/dir"
    match = files.TEMP_PATTERN.match(os.path.basename(tmp))
    assert match is not None
    assert (match.group("target"), match.group("host"), int(match.group("pid"))) == (name, files.host_tag(),
                                                                                    os.getpid())
