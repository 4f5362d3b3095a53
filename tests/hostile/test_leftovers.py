"""Lock files go with their VDI, and stale temporary files are swept at scan; removing a lock file never lets
two holders in."""

from __future__ import annotations

import os
import threading
import time

from smapi.sr.locks import FileLock
from tests.hostile.conftest import MiB


def _lock_files(attached) -> list:
    return sorted(n for n in os.listdir(os.path.join(attached.device_config["path"], ".locks"))
                  if n.startswith("vdi-"))


def test_lock_files_go_with_their_vdis(attached):
    made = [attached.call("VDI.create", sr=attached.sr, vdi_info={"virtual_size": MiB})["vdi"] for _ in range(4)]
    for vdi in made:
        attached.call("VDI.resize", sr=attached.sr, vdi=vdi, new_size=2 * MiB)  # takes the VDI's lock
        snap = attached.call("VDI.snapshot", sr=attached.sr, vdi_info={"vdi": vdi, "virtual_size": MiB})
        attached.call("VDI.destroy", sr=attached.sr, vdi=snap["vdi"])
        attached.call("VDI.destroy", sr=attached.sr, vdi=vdi)
    attached.call("SR.scan", sr=attached.sr)
    assert _lock_files(attached) in ([], [f"vdi-{attached.vdi}"])


def test_scan_sweeps_stale_lock_and_temp_files(attached):
    sr_dir = attached.device_config["path"]
    stale_lock = os.path.join(sr_dir, ".locks", "vdi-00000000-dead")
    open(stale_lock, "w").close()
    dead = os.path.join(sr_dir, "sr.json.tmp.999999999.1")  # no such pid
    ancient = os.path.join(sr_dir, ".journal", "create-x.json.tmp.1.2")
    live = os.path.join(sr_dir, f"sr.json.tmp.{os.getpid()}.3")  # a write in progress (this process)
    for path in (dead, ancient, live):
        with open(path, "w") as f:
            f.write("{")
    old = time.time() - 2 * 3600
    for path in (dead, ancient):
        os.utime(path, (old, old))
    held = FileLock(os.path.join(sr_dir, ".locks", "vdi-00000000-held"))
    held.acquire()
    try:
        attached.call("SR.scan", sr=attached.sr)
    finally:
        held.release()
    assert not os.path.exists(stale_lock) and not os.path.exists(dead) and not os.path.exists(ancient)
    assert os.path.exists(live) and os.path.exists(held.path)
    os.unlink(live)


def test_discarded_lock_never_has_two_holders(tmp_path):
    path = str(tmp_path / "vdi-x")
    first = FileLock(path)
    first.acquire()
    waiter_has_it = threading.Event()
    release_waiter = threading.Event()

    def waiter() -> None:
        lock = FileLock(path)
        lock.acquire(timeout=10)  # opens the file that is about to be discarded, and waits on it
        waiter_has_it.set()
        release_waiter.wait(10)
        lock.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    first.discard()
    first.release()
    assert waiter_has_it.wait(10)
    late = threading.Thread(target=lambda: results.append(FileLock(path).acquire(timeout=0)))
    results: list = []
    late.start()
    late.join()
    assert results == [False], "a newcomer got the lock the waiter holds"
    release_waiter.set()
    thread.join()


def test_torn_footer_is_repaired_at_attach(attached, monkeypatch, tmp_path):
    from smapi.core.driver import load_driver
    from smapi.vhd import check

    driver = load_driver("file")
    data = os.urandom(65536)
    handle = driver.open_vdi(attached.sr, attached.vdi, writable=True)
    handle.write(4096, data)
    handle.close()
    volume = os.path.join(attached.device_config["path"], attached.vdi + ".vhd")
    os.truncate(volume, os.path.getsize(volume) - 512)  # the primary footer is gone, as after a killed write
    assert not check(volume).ok
    monkeypatch.setenv("SMAPI_RUN_DIR", str(tmp_path / "rebooted"))
    attached.call("SR.attach", sr=attached.sr, device_config=attached.device_config)
    assert check(volume).ok, check(volume).errors
    handle = load_driver("file").open_vdi(attached.sr, attached.vdi)
    try:
        assert handle.read(4096, len(data)) == data
    finally:
        handle.close()
