"""Which way should the SR engine reach NFS? Sequential 2 MiB-block VHD write/read through each candidate.

    .venv/bin/python -m tests.nfs.bench_mount [MiB] [rounds]

Candidates, all on one real ganesha (NFSv4.1, loopback), each writing then reading a dynamic VHD of `MiB`:

* fuse:   the FUSE mount (mfusepy + nfs-rs) as a real directory; the unchanged FileBacking on a file in it;
* native: an NFS-native Backing calling nfs-rs directly (what an "NFS substrate" would be), no FUSE;
* raw-rs: nfs-rs write_at/read_at of the same 2 MiB blocks with no VHD at all (the client's ceiling);
* local:  FileBacking on the local disk (the machine's ceiling).

Not a test: it prints a table (best of `rounds`, MiB/s).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

import nfs_rs

from smapi.drivers.nfs.config import from_device_config
from smapi.drivers.nfs.mount import FuseMounter
from smapi.vhd import Backing, FileBacking, create_dynamic, open_chain
from tests.nfs.ganesha import GaneshaServer

MiB = 1 << 20
BLOCK = 2 * MiB


class NfsRsBacking(Backing):
    """A Backing over one nfs-rs file: the NFS-native alternative to the FUSE mount."""

    def __init__(self, client: Any, path: str, *, create: bool = False) -> None:
        self.client, self.path, self.name, self.writable = client, path, f"nfs:{path}", True
        self.file = client.open(path, "w+b" if create else "r+b")

    def pread(self, length: int, offset: int) -> bytes:
        return self.file.read_at(offset, length)

    def pwrite(self, data: Any, offset: int) -> None:
        self.file.write_at(bytes(data), offset)

    def size(self) -> int:
        return int(self.client.stat(self.path).size)

    def resize(self, size: int) -> None:
        self.client.truncate(self.path, size)

    def close(self) -> None:
        self.file.close()


def vhd_round(open_backing: Callable[[bool], Backing], mib: int, data: bytes) -> Tuple[float, float]:
    """(write s, read s) of `mib` MiB through a dynamic VHD with 2 MiB blocks."""
    size = mib * MiB
    with open_backing(True) as b:
        create_dynamic(b, size)
    t0 = time.perf_counter()
    chain = open_chain(open_backing(False), writable=True)
    with chain.batch():
        for off in range(0, size, BLOCK):
            chain.write(off, data)
    chain.flush()
    chain.close()
    t1 = time.perf_counter()
    chain = open_chain(open_backing(False))
    for off in range(0, size, BLOCK):
        assert chain.read(off, BLOCK) == data
    chain.close()
    return t1 - t0, time.perf_counter() - t1


def raw_rs_round(client: Any, path: str, mib: int, data: bytes) -> Tuple[float, float]:
    t0 = time.perf_counter()
    with client.open(path, "w+b") as f:
        for off in range(0, mib * MiB, BLOCK):
            f.write_at(data, off)
    t1 = time.perf_counter()
    with client.open(path, "rb") as f:
        for off in range(0, mib * MiB, BLOCK):
            assert f.read_at(off, BLOCK) == data
    return t1 - t0, time.perf_counter() - t1


def main(argv: List[str]) -> int:
    mib = int(argv[0]) if argv else 128
    rounds = int(argv[1]) if len(argv) > 1 else 3
    data = os.urandom(BLOCK)
    results: Dict[str, List[Tuple[float, float]]] = {}
    with GaneshaServer("4") as server, tempfile.TemporaryDirectory() as local:
        os.makedirs(os.path.join(server.export_dir, "bench"))
        dc = {"server": "127.0.0.1", "serverpath": "/export", "nfsversion": "4.1", "port": str(server.port)}
        target = from_device_config(dc)
        mnt = os.path.join(local, "mnt")
        mounter = FuseMounter()
        mounter.mount(target, dc, mnt)
        client = nfs_rs.Client.connect(f"nfs://127.0.0.1:{server.port}/export?version=4.1")
        try:
            for r in range(rounds):
                fuse_path = os.path.join(mnt, "bench", f"fuse{r}.vhd")
                results.setdefault("fuse (FUSE mount + FileBacking)", []).append(vhd_round(
                    lambda new, p=fuse_path: FileBacking(p, writable=True, create=new), mib, data))
                native = f"bench/native{r}.vhd"
                results.setdefault("native (nfs-rs Backing)", []).append(vhd_round(
                    lambda new, p=native: NfsRsBacking(client, p, create=new), mib, data))
                results.setdefault("raw-rs (nfs-rs, no VHD)", []).append(
                    raw_rs_round(client, f"bench/raw{r}.bin", mib, data))
                local_path = os.path.join(local, f"local{r}.vhd")
                results.setdefault("local (FileBacking, local disk)", []).append(vhd_round(
                    lambda new, p=local_path: FileBacking(p, writable=True, create=new), mib, data))
                for path in (fuse_path, local_path, os.path.join(server.export_dir, native)):
                    os.unlink(path)
        finally:
            client.close()
            mounter.unmount(mnt)
    print(f"sequential {mib} MiB in 2 MiB blocks through a dynamic VHD, best of {rounds} (MiB/s)")
    print(f"{'path':36} {'write':>8} {'read':>8}")
    for name, runs in results.items():
        w = min(r[0] for r in runs)
        rd = min(r[1] for r in runs)
        print(f"{name:36} {mib / w:8.0f} {mib / rd:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
