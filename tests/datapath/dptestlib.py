"""Images with known contents and the real NBD clients the datapath tests drive."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from typing import List, Tuple

import smapi.vhd as vhd

MiB = 1 << 20
BLOCK = 2 * MiB
LIBNBD_PY = "/usr/bin/python3"  # python3-libnbd is a Debian package for the system Python only


def make_chain(directory: str, size: int, depth: int, *, seed: int = 7, align: int = 1) -> Tuple[str, bytearray]:
    """A chain of ``depth`` images in ``directory``; each level writes some blocks, partial ranges and sectors
    (``align=4096`` keeps every write 4 KiB aligned, which libvhdi needs to read it right).

    Returns the leaf path and the expected raw contents of the whole disk.
    """
    rnd = random.Random(seed)
    model = bytearray(size)
    path = os.path.join(directory, "d0.vhd")
    vhd.create_dynamic(path, size)
    for level in range(depth):
        if level:
            child = os.path.join(directory, f"d{level}.vhd")
            vhd.snapshot(path, child)
            path = child
        writes: List[Tuple[int, bytes]] = []
        for _ in range(6):
            blk = rnd.randrange(size // BLOCK)
            off = blk * BLOCK + rnd.choice([0, 512, 4096, BLOCK // 2 + 7]) // align * align
            n = min(rnd.choice([512, 65536, BLOCK, BLOCK + 1000]) // align * align or align, size - off)
            writes.append((off, rnd.randbytes(n)))
        with vhd.open_chain(path, writable=True) as chain:
            for off, data in writes:
                chain.write(off, data)
                model[off : off + len(data)] = data
    return path, model


def chain_bytes(leaf: str) -> bytes:
    with vhd.open_chain(leaf) as chain:
        return chain.read(0, chain.size)


def file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return sha(f.read())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, input=input, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed ({res.returncode}): {res.stdout[-2000:]!r} {res.stderr[-2000:]!r}")
    return res


def qemu_io(uri: str, *commands: str, check: bool = True, readonly: bool = False) -> subprocess.CompletedProcess:
    args = ["qemu-io", "-f", "raw"] + (["-r"] if readonly else [])
    for c in commands:
        args += ["-c", c]
    return run(*args, uri, check=check)


def qemu_convert_to_raw(uri: str, out: str) -> bytes:
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out)
    with open(out, "rb") as f:
        return f.read()


def libnbd(script: str, uri: str) -> subprocess.CompletedProcess:
    """Run ``script`` under the system Python with ``h``, an ``nbd.NBD()`` connected to ``uri``."""
    prelude = "import sys, nbd\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([LIBNBD_PY, "-c", prelude + script, uri], capture_output=True, text=True, env=env,
                          timeout=60)


def libnbd_available() -> bool:
    if not os.path.exists(LIBNBD_PY):
        return False
    res = subprocess.run([LIBNBD_PY, "-c", "import nbd"], capture_output=True)
    return res.returncode == 0


_PYVHDI_READ = """
import sys, pyvhdi
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file(); f.open(p)
    if files: f.set_parent(files[-1])
    files.append(f)
leaf = files[-1]
sys.stdout.buffer.write(leaf.read_buffer_at_offset(leaf.get_media_size(), 0))
"""


def pyvhdi_available() -> bool:
    return os.path.exists(LIBNBD_PY) and subprocess.run([LIBNBD_PY, "-c", "import pyvhdi"],
                                                        capture_output=True).returncode == 0


def pyvhdi_read(paths_base_first: List[str]) -> bytes:
    """The chain's disk as libvhdi (an independent VHD reader) sees it."""
    return subprocess.run([LIBNBD_PY, "-c", _PYVHDI_READ, *paths_base_first], check=True, capture_output=True,
                          timeout=60).stdout
