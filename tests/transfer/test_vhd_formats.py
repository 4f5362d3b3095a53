"""The .vhd view (qemu-img reads the dynamic one, smapi's VHD library the differencing chain), VHD uploads over
PUT and BITS, hostile VHDs, vdi-export/vdi-import in every format, and /export_raw_vdi, /import_raw_vdi."""

from __future__ import annotations

import os
import subprocess
import tarfile
import threading

import pytest
from click.testing import CliRunner

from smapi.cli.main import cli
from smapi.vhd import open_chain
from tests.transfer.bitsclient import BitsClient
from tests.transfer.conftest import MiB, curl, patterned, sha, status_of

SIZE = 16 * MiB


def _chain(fsr):
    """A VDI over a snapshot, each with its own data; returns (leaf, snapshot)."""
    vdi = fsr.create(SIZE)
    fsr.write(vdi, 0, patterned(20, 3 * MiB))
    fsr.write(vdi, 9 * MiB + 5, patterned(21, MiB))
    snap = fsr.snapshot(vdi)
    fsr.write(vdi, 2 * MiB + 512, patterned(22, 2 * MiB))
    fsr.write(vdi, 15 * MiB, patterned(23, 4096))
    return vdi, snap


def _qemu_vhd(work: str, name: str, content: bytes) -> str:
    raw = os.path.join(work, name + ".raw")
    with open(raw, "wb") as f:
        f.write(content)
    out = os.path.join(work, name + ".vhd")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
                    raw, out], check=True, capture_output=True)
    return out


def test_vhd_view_dynamic_and_differencing(fsr, service, work):
    vdi, snap = _chain(fsr)
    leaf_data, snap_data = fsr.read_all(vdi), fsr.read_all(snap)
    ex = service.expose(vdi, read_only="true")
    auth = ("--digest", "-u", ex.user)
    leaf_vhd = os.path.join(work, f"{vdi}.vhd")
    assert status_of(curl(*auth, "-o", leaf_vhd, ex.url + ".vhd")) == 200
    raw = os.path.join(work, "leaf.raw")
    with open(raw, "wb") as f:
        f.write(leaf_data)
    r = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", leaf_vhd, raw], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # HEAD gives the length; a Range GET gives the same bytes as the download.
    head = curl(*auth, "-I", ex.url + ".vhd")
    assert f"Content-Length: {os.path.getsize(leaf_vhd)}".encode() in head.stdout
    with open(leaf_vhd, "rb") as f:
        whole = f.read()
    for a, b in ((0, 600), (1000, 5000), (len(whole) - 700, len(whole) - 1), (3 * MiB - 10, 5 * MiB)):
        r = curl(*auth, "-r", f"{a}-{b}", ex.url + ".vhd")
        assert status_of(r) == 206 and r.stdout == whole[a:b + 1], (a, b)
    # The differencing view against the snapshot, next to the snapshot's own dynamic view, is a chain.
    snap_ex = service.expose(snap, read_only="true")
    chain_dir = os.path.join(work, "chain")
    os.makedirs(chain_dir)
    base_vhd = os.path.join(chain_dir, f"{snap}.vhd")
    child_vhd = os.path.join(chain_dir, f"{vdi}.vhd")
    assert status_of(curl("--digest", "-u", snap_ex.user, "-o", base_vhd, snap_ex.url + ".vhd")) == 200
    assert status_of(curl(*auth, "-o", child_vhd, ex.url + f".vhd?base={snap}")) == 200
    assert os.path.getsize(child_vhd) < os.path.getsize(leaf_vhd)  # only what changed since the snapshot
    with open_chain(child_vhd) as chain:
        assert chain.depth == 2 and chain.leaf.is_differencing
        assert sha(chain.read(0, SIZE)) == sha(leaf_data)
    with open_chain(base_vhd) as chain:
        assert sha(chain.read(0, SIZE)) == sha(snap_data)
    assert status_of(curl(*auth, "-o", "/dev/null", ex.url + ".vhd?base=00000000-0000-0000-0000-00000000dead")) \
        == 404


def test_vhd_upload_put_and_bits(fsr, service, work):
    content = bytearray(SIZE)
    content[MiB:3 * MiB] = patterned(30, 2 * MiB)
    content[SIZE - 4096:] = patterned(31, 4096)
    vhd = _qemu_vhd(work, "up", bytes(content))
    vdi = fsr.create(SIZE)
    fsr.write(vdi, 8 * MiB, b"\x55" * MiB)  # outside the VHD's blocks: a dynamic VHD says it reads zero
    ex = service.expose(vdi)
    assert status_of(curl("--digest", "-u", ex.user, "-T", vhd, ex.url + ".vhd")) == 200
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(bytes(content))

    other = fsr.create(SIZE)
    ex = service.expose(other, "bits")
    r = ex.record
    with open(vhd, "rb") as f:
        blob = f.read()
    c = BitsClient(r["ip"], int(r["port"]), r["url_path"] + ".vhd", r["username"], r["password"])
    try:
        c.upload(blob, fragment=MiB + 17)
    finally:
        c.close()
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(other)) == sha(bytes(content))


def test_hostile_vhd_uploads_leave_the_vdi_intact(fsr, service, work):
    content = patterned(40, SIZE)
    vdi = fsr.create(SIZE)
    fsr.write(vdi, 0, content)
    good = _qemu_vhd(work, "good", patterned(41, SIZE))
    with open(good, "rb") as f:
        blob = f.read()
    ex = service.expose(vdi)
    auth = ("--digest", "-u", ex.user)

    def put(data: bytes, name: str) -> int:
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(data)
        return status_of(curl(*auth, "-o", "/dev/null", "-T", path, ex.url + ".vhd"))

    assert put(blob[: len(blob) // 2], "truncated") == 400
    assert put(blob[:700], "tiny") == 400
    assert put(b"\0" * 4096, "garbage") == 400
    corrupt = bytearray(blob)
    corrupt[600] ^= 0xFF  # inside the header: its checksum no longer matches
    assert put(bytes(corrupt), "corrupt") == 400
    big = _qemu_vhd(work, "big", patterned(42, 2 * SIZE))  # blocks beyond the disk's end
    with open(big, "rb") as f:
        assert put(f.read(), "big") == 416
    fixed = os.path.join(work, "fixed.vhd")
    subprocess.run(["qemu-img", "create", "-f", "vpc", "-o", "subformat=fixed,force_size=on", fixed, str(SIZE)],
                   check=True, capture_output=True)
    with open(fixed, "rb") as f:
        assert put(f.read(), "fixedup") == 400  # a fixed VHD has no footer copy at offset 0
    # A truncated BITS .vhd upload is refused at its first fragment.
    service.unexpose(ex.handle)
    ex = service.expose(vdi, "bits")
    r = ex.record
    c = BitsClient(r["ip"], int(r["port"]), r["url_path"] + ".vhd", r["username"], r["password"])
    try:
        c.create_session()
        cut = blob[: len(blob) // 2]
        status, h = c.fragment(cut[:MiB], 0, len(cut))
        assert status == 400 and "BITS-Error-Code".lower() in h
    finally:
        c.close()
    service.unexpose(ex.handle)
    assert sha(fsr.read_all(vdi)) == sha(content)


def _run(*args: str) -> object:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r


@pytest.mark.parametrize("fmt", ["raw", "vhd", "tar", "xva-legacy"])
def test_cli_export_import_round_trip(fsr, work, fmt):
    vdi, _snap = _chain(fsr)
    data = fsr.read_all(vdi)
    out = os.path.join(work, "out." + fmt)
    base = ["-d", "smapi.drivers.file:FileDriver", "--sr", fsr.sr, "--format", fmt, "--no-progress"]
    r = _run("vdi-export", *base, "--json", vdi, out)
    assert r.exit_code == 0, r.output
    target = fsr.create(SIZE)
    r = _run("vdi-import", *base, target, out)
    assert r.exit_code == 0, r.output
    assert sha(fsr.read_all(target)) == sha(data)
    if fmt == "tar":
        with tarfile.open(out) as tar:
            names = tar.getnames()
        assert names[0] == "vdi/00000000" and names[1] == "vdi/00000000.xxhash"
        assert len([n for n in names if not n.endswith(".xxhash")]) < SIZE // MiB  # zero chunks left out
    if fmt == "vhd":
        raw = os.path.join(work, "ref.raw")
        with open(raw, "wb") as f:
            f.write(data)
        assert subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", out, raw]).returncode == 0


def test_cli_differential_vhd_export_and_corruption(fsr, work):
    vdi, snap = _chain(fsr)
    base = ["-d", "smapi.drivers.file:FileDriver", "--sr", fsr.sr, "--no-progress"]
    full = os.path.join(work, "full.vhd")
    delta = os.path.join(work, "delta.vhd")
    assert _run("vdi-export", *base, "--format", "vhd", snap, full).exit_code == 0
    assert _run("vdi-export", *base, "--format", "vhd", "--base", snap, vdi, delta).exit_code == 0
    assert os.path.getsize(delta) < os.path.getsize(full)
    # Incremental restore: the full VHD, then the delta, into one VDI.
    target = fsr.create(SIZE)
    assert _run("vdi-import", *base, "--format", "vhd", target, full).exit_code == 0
    assert _run("vdi-import", *base, "--format", "vhd", target, delta).exit_code == 0
    assert sha(fsr.read_all(target)) == sha(fsr.read_all(vdi))
    # A corrupt tar chunk: a clear error naming the member, exit 1.
    tar = os.path.join(work, "x.tar")
    assert _run("vdi-export", *base, "--format", "tar", vdi, tar).exit_code == 0
    with open(tar, "r+b") as f:
        f.seek(512 + 1000)
        byte = f.read(1)
        f.seek(512 + 1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    r = _run("vdi-import", *base, "--format", "tar", fsr.create(SIZE), tar)
    assert r.exit_code == 1 and "vdi/00000000: checksum mismatch" in r.output
    trunc = os.path.join(work, "t.vhd")
    with open(full, "rb") as f, open(trunc, "wb") as g:
        g.write(f.read(os.path.getsize(full) // 2))
    r = _run("vdi-import", *base, "--format", "vhd", fsr.create(SIZE), trunc)
    assert r.exit_code == 1 and "truncated VHD" in r.output


@pytest.fixture
def host_server(fsr):
    from smapi.transfer.auth import Authenticator, Credentials
    from smapi.transfer.handlers import HostSite, TransferHandler, serve_open_disk_factory
    from smapi.transfer.httpserve import TransferServer
    from smapi.transfer.locate import find_vdi, open_data

    site = HostSite(Authenticator(Credentials("root", "s3cret"), allow_basic=False),
                    serve_open_disk_factory(lambda v, w: open_data(find_vdi(v), w)))
    server = TransferServer(("127.0.0.1", 0), TransferHandler, site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_toolstack_export_and_import_endpoints(fsr, host_server, work):
    vdi, snap = _chain(fsr)
    data = fsr.read_all(vdi)
    auth = ("--digest", "-u", "root:s3cret")
    for fmt in ("raw", "vhd", "tar"):
        out = os.path.join(work, f"e.{fmt}")
        r = curl(*auth, "-D", "-", "-o", out, f"{host_server}/export_raw_vdi?vdi={vdi}&format={fmt}")
        assert status_of(r) == 200, r.stderr
        assert f'filename="{vdi}.{fmt}"'.encode() in r.stdout
        target = fsr.create(SIZE)
        r = curl(*auth, "-T", out, f"{host_server}/import_raw_vdi?vdi={target}&format={fmt}")
        assert status_of(r) == 200, r.stdout
        assert sha(fsr.read_all(target)) == sha(data), fmt
    delta = os.path.join(work, "d.vhd")
    r = curl(*auth, "-o", delta, f"{host_server}/export_raw_vdi?vdi={vdi}&format=vhd&base={snap}")
    assert status_of(r) == 200
    restored = fsr.create(SIZE)
    fsr.write(restored, 0, fsr.read_all(snap))
    assert status_of(curl(*auth, "-T", delta, f"{host_server}/import_raw_vdi?vdi={restored}&format=vhd")) == 200
    assert sha(fsr.read_all(restored)) == sha(data)
    assert status_of(curl("-o", "/dev/null", f"{host_server}/export_raw_vdi?vdi={vdi}")) == 401
    assert status_of(curl(*auth, "-o", "/dev/null", f"{host_server}/export_raw_vdi?vdi={vdi}&format=qcow9")) == 404
    assert status_of(curl(*auth, "-o", "/dev/null", f"{host_server}/export_raw_vdi")) == 400
    assert status_of(curl(*auth, "-o", "/dev/null",
                          f"{host_server}/export_raw_vdi?vdi=00000000-0000-0000-0000-000000000000")) == 404


def test_the_cli_offers_the_shared_formats():
    """The CLI keeps its format list as a literal (no transfer import at startup); it must be the shared one."""
    from smapi.cli.data import FORMATS
    from smapi.transfer.formats import CLI_FORMATS

    assert tuple(FORMATS) == tuple(CLI_FORMATS)
