"""Benchmark of whole-disk HTTP PUT uploads into a VDI against the same HTTP server writing a plain file.

    python bench/upload.py [--size 512M | --smoke] [--rounds 3] [--dir DIR]

Contenders, interleaved per round (bench/_harness.py), all fed by the same client (``curl -T`` over loopback,
Digest auth) and the same server code (`TransferServer` + `ExposureSite` + `TransferHandler`, in this process):

    plain   the exposure's disk is a plain file (no upload scratch: `DirectUpload`, not atomic), fsync at the end
    atomic  the same server writing a new file beside the plain one, then fsync and rename over it: the least an
            upload that is all-or-nothing costs on a file system (the old blocks are freed by the rename)
    smapi   a VHD VDI of a file SR: the atomic upload path (scratch, then an in-place landing: O(metadata))
    copy    the same with the landing forced to copy (`SMAPI_UPLOAD_RELINK_MIN` huge): the previous behaviour
    cp      ``cp`` of the body file to a plain file, then fsync (a floor for the disk, without HTTP)

Scenarios: *fresh* (a new VDI / a new sparse file every round: the data lands in fresh blocks) and *over* (the
target already holds a whole disk of data). Every round starts from a settled host (``sync`` after the untimed
preparation). The collector is off (``SMAPI_GC=off``): a whole-disk PUT leaves nothing to merge (the scratch
replaces the leaf), so no background work is hidden from the numbers. Results are throughput ratios against
``plain`` of the same round; the smapi VDI is read back and checksummed once at the end.

Targets: against ``plain`` when the data lands in fresh blocks (the in-place landing must cost no more than a
plain write); over existing data against ``atomic``, because ``plain`` then overwrites blocks in place and a
cut-off upload leaves the disk half old, half new, which smapi must not do: ``plain`` stays in the table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from _harness import (  # noqa: E402
    Contender,
    Scenario,
    environment,
    pick_work_dir,
    print_env,
    print_summary,
    run_scenario,
)

MiB = 1 << 20
HTTP_CONTENDERS = ("plain", "atomic", "smapi", "copy")
SR_UUID = "0b0e0c4c-0000-4000-8000-00000000b0e0"
USER, PASSWORD = "bench", "b3nch"


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": 1 << 30}
    t = text.strip().upper()
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


class PlainFile:
    """A data handle over a plain file (what the `plain` contender's exposure serves)."""

    def __init__(self, path: str, size: int) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, size)
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class AtomicFile(PlainFile):
    """Writes `path + ".new"`; the first flush makes it durable and renames it over `path` (then syncs the
    directory), so `path` holds the old bytes or all the new ones."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        if os.path.exists(path + ".new"):
            os.unlink(path + ".new")
        super().__init__(path + ".new", size)
        self.landed = False

    def flush(self) -> None:
        os.fsync(self.fd)
        if not self.landed:
            os.replace(self.path + ".new", self.path)
            dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self.landed = True


class Sr:
    """A file SR driven through the storage API in this process."""

    def __init__(self, path: str) -> None:
        from smapi.core.driver import load_driver

        self.driver = load_driver("smapi.drivers.file:FileDriver")
        self.call("SR.create", sr=SR_UUID, device_config={"path": path}, physical_size=0)
        self.call("SR.attach", sr=SR_UUID, device_config={"path": path})

    def call(self, verb: str, **args: Any) -> Any:
        return self.driver.call("storage", verb, dbg="bench/upload", **args)

    def create(self, size: int) -> str:
        return self.call("VDI.create", sr=SR_UUID, vdi_info={"virtual_size": size})["vdi"]

    def destroy(self, vdi: str) -> None:
        self.call("VDI.destroy", sr=SR_UUID, vdi=vdi)


class Bench:
    def __init__(self, w: str, size: int, rounds: int) -> None:
        from smapi.transfer.auth import Authenticator, Credentials
        from smapi.transfer.disk import Disk
        from smapi.transfer.handlers import ExposureSite, TransferHandler
        from smapi.transfer.httpserve import TransferServer

        self.w, self.size, self.rounds = w, size, rounds
        self.Disk = Disk
        self.body = os.path.join(w, "body.raw")
        rng = random.Random(7)
        digest = hashlib.sha256()
        with open(self.body, "wb") as f:
            for _ in range(0, size, 4 * MiB):
                chunk = rng.randbytes(min(4 * MiB, size - f.tell()))
                digest.update(chunk)
                f.write(chunk)
        self.body_sha = digest.hexdigest()
        self.sr = Sr(os.path.join(w, "sr"))
        self.vdis: Dict[str, str] = {}
        self.scenarios: List[Scenario] = []
        auth = Authenticator(Credentials(USER, PASSWORD), allow_basic=False)
        # One server per contender: each serves one disk, replaced between rounds (untimed).
        self.sites: Dict[str, Any] = {}
        self.servers = []
        for name in HTTP_CONTENDERS:
            site = ExposureSite(Disk(PlainFile(os.path.join(w, f"{name}.placeholder"), size), True), name, "http",
                                auth, lambda v, wr: None)  # type: ignore[arg-type,return-value]
            server = TransferServer(("127.0.0.1", 0), TransferHandler, site)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.sites[name] = site
            self.servers.append(server)
        self.urls = {name: f"http://127.0.0.1:{s.port}{self.sites[name].url_path}"
                     for name, s in zip(HTTP_CONTENDERS, self.servers)}

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for site in self.sites.values():
            site.disk.close()

    # -- preparation (untimed) ------------------------------------------------------------------------------
    def _swap(self, name: str, disk: Any) -> None:
        old, self.sites[name].disk = self.sites[name].disk, disk
        old.close()

    def _plain(self, fresh: bool) -> Callable[[], None]:
        path = os.path.join(self.w, "plain.raw")

        def prepare() -> None:
            self._swap("plain", self.Disk(PlainFile(os.path.join(self.w, "plain.placeholder"), self.size), True))
            if fresh and os.path.exists(path):
                os.unlink(path)
            self._swap("plain", self.Disk(PlainFile(path, self.size), True))
            if not fresh and os.path.getsize(path) and os.stat(path).st_blocks * 512 < self.size:
                shutil.copyfile(self.body, path)
            settle()
        return prepare

    def _atomic(self, fresh: bool) -> Callable[[], None]:
        path = os.path.join(self.w, "atomic.raw")

        def prepare() -> None:
            self._swap("atomic", self.Disk(PlainFile(os.path.join(self.w, "atomic.placeholder"), self.size), True))
            if fresh and os.path.exists(path):
                os.unlink(path)
            if not fresh and not os.path.exists(path):
                shutil.copyfile(self.body, path)
            self._swap("atomic", self.Disk(AtomicFile(path, self.size), True))
            settle()
        return prepare

    def _vdi(self, name: str, fresh: bool) -> Callable[[], None]:
        def prepare() -> None:
            os.environ["SMAPI_UPLOAD_RELINK_MIN"] = str(1 << 62) if name == "copy" else ""
            self._swap(name, self.Disk(PlainFile(os.path.join(self.w, f"{name}.placeholder"), self.size), True))
            vdi = self.vdis.get(name)
            if vdi is None or fresh:
                if vdi is not None:
                    self.sr.destroy(vdi)
                vdi = self.vdis[name] = self.sr.create(self.size)
                if not fresh:
                    self._swap(name, self.Disk(self.sr.driver.open_vdi(SR_UUID, vdi, writable=True), True))
                    curl_put(self.urls[name], self.body)()
            self._swap(name, self.Disk(self.sr.driver.open_vdi(SR_UUID, vdi, writable=True), True))
            settle()
        return prepare

    def _cp(self) -> Callable[[], None]:
        dst = os.path.join(self.w, "cp.raw")

        def run() -> None:
            subprocess.run(["cp", self.body, dst], check=True)
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        return run

    def scenario(self, fresh: bool) -> None:
        kind = "fresh" if fresh else "over"
        cp_dst = os.path.join(self.w, "cp.raw")

        def cp_prepare() -> None:
            if fresh and os.path.exists(cp_dst):
                os.unlink(cp_dst)
            settle()

        sc = Scenario(
            f"whole-disk PUT, {self.size >> 20} MiB, {kind}",
            [Contender("plain", curl_put(self.urls["plain"], self.body), self._plain(fresh)),
             Contender("atomic", curl_put(self.urls["atomic"], self.body), self._atomic(fresh)),
             Contender("smapi", curl_put(self.urls["smapi"], self.body), self._vdi("smapi", fresh)),
             Contender("copy", curl_put(self.urls["copy"], self.body), self._vdi("copy", fresh)),
             Contender("cp", self._cp(), cp_prepare)],
            ratios=[(f"smapi PUT / plain-file PUT ({kind})", "smapi", "plain", "throughput",
                     ">= 0.7" if fresh else None),
                    (f"smapi PUT / atomic-file PUT ({kind})", "smapi", "atomic", "throughput",
                     None if fresh else ">= 0.7"),
                    (f"atomic-file PUT / plain-file PUT ({kind})", "atomic", "plain", "throughput", None),
                    (f"copy landing PUT / plain-file PUT ({kind})", "copy", "plain", "throughput", None),
                    (f"smapi PUT / cp ({kind})", "smapi", "cp", "throughput", None),
                    (f"plain-file PUT / cp ({kind})", "plain", "cp", "throughput", None)],
        )
        times = run_scenario(sc, self.rounds)
        for name, ts in times.items():
            ts = sorted(ts)
            print(f"  {name}: median {self.size / ts[len(ts) // 2] / 1e6:.0f} MB/s")
        self.scenarios.append(sc)

    def verify(self) -> None:
        for name in ("smapi", "copy"):
            disk = self.sites[name].disk
            h = hashlib.sha256()
            for off in range(0, self.size, 4 * MiB):
                h.update(disk.read(off, min(4 * MiB, self.size - off)))
            assert h.hexdigest() == self.body_sha, f"{name}: the VDI does not hold the uploaded body"
        print(f"\nverified: the smapi and copy VDIs read back the body (sha256 {self.body_sha[:16]}...)")


def curl_put(url: str, path: str) -> Callable[[], None]:
    def run() -> None:
        r = subprocess.run(["curl", "-sS", "--digest", "-u", f"{USER}:{PASSWORD}", "-T", path, "-o", "/dev/null",
                            "-w", "%{http_code}", url], capture_output=True, text=True)
        if r.stdout.strip() != "200":
            raise RuntimeError(f"PUT {url}: {r.stdout} {r.stderr}")
    return run


def settle() -> None:
    subprocess.run(["sync"], check=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="512M", help="disk size (default 512M)")
    ap.add_argument("--smoke", action="store_true", help="tiny run: 16 MiB, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per scenario (default 3, smoke 1)")
    ap.add_argument("--dir", default=None, help="scratch parent directory (default: same disk as the repo)")
    args = ap.parse_args(argv)
    if not shutil.which("curl"):
        print("curl is not installed", file=sys.stderr)
        return 2
    size = parse_size("16M" if args.smoke and args.size == "512M" else args.size)
    rounds = args.rounds or (1 if args.smoke else 3)
    w = tempfile.mkdtemp(prefix="upload-bench-", dir=args.dir or pick_work_dir(REPO))
    os.environ.update({"SMAPI_RUN_DIR": os.path.join(w, "run"), "SMAPI_GC": "off"})
    os.makedirs(os.environ["SMAPI_RUN_DIR"])
    env = environment(w)
    env.update({"dataset": f"{size >> 20} MiB", "rounds": str(rounds),
                "client": "curl -T (Digest, loopback), same for every HTTP contender"})
    print("# smapi upload benchmark (whole-disk HTTP PUT: VDI vs plain file, same server code)")
    print_env(env)
    b = Bench(w, size, rounds)
    try:
        b.scenario(fresh=True)
        b.scenario(fresh=False)
        b.verify()
        print_summary(b.scenarios)
        print(f"\nloadavg after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        b.close()
        shutil.rmtree(w, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
