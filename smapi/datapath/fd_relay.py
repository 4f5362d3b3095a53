"""The server end of an NBD connection handed over as a file descriptor (Datapath.import_activate).

xapi's inbound mirroring passes, by SCM_RIGHTS over a Unix socket, one end of a connection whose other end is an
NBD client; that descriptor "becomes the server end of an NBD connection". This process listens on that Unix
socket; for each descriptor received it connects to the volume's own NBD server (the datapath's nbdkit) and
relays bytes both ways until either side closes, so the client speaks to nbdkit as if connected directly.

Run detached, one per activated import: `python -m smapi.datapath.fd_relay <listen socket> <nbd socket>`.
SIGTERM stops it; the listening socket file is removed on the way out.
"""

from __future__ import annotations

import array
import contextlib
import os
import signal
import socket
import sys
import threading
from typing import List, Optional

#: descriptors accepted per message (xapi passes one)
MAX_FDS = 4


def receive_fds(conn: socket.socket) -> List[int]:
    fds = array.array("i")
    _msg, ancdata, _flags, _addr = conn.recvmsg(1, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass  # either side went away: the connection is over
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def relay(client_fd: int, nbd_socket: str) -> None:
    """Join the handed-over descriptor to a fresh connection to the NBD server, in two pump threads."""
    client = socket.socket(fileno=client_fd)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.connect(nbd_socket)
    except OSError:
        client.close()
        server.close()
        return
    pumps = [threading.Thread(target=_pump, args=pair, daemon=True) for pair in ((client, server), (server, client))]
    for t in pumps:
        t.start()

    def close_when_done() -> None:
        for t in pumps:
            t.join()
        client.close()
        server.close()

    threading.Thread(target=close_when_done, daemon=True).start()


def serve(listen_path: str, nbd_socket: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(listen_path)
    listener.bind(listen_path)
    os.chmod(listen_path, 0o600)
    listener.listen(8)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                for fd in receive_fds(conn):
                    relay(fd, nbd_socket)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(listen_path)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m smapi.datapath.fd_relay <listen socket> <nbd socket>", file=sys.stderr)
        return 2
    serve(args[0], args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
