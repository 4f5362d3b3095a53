"""A self-signed certificate per exposure, made with the openssl command line (no extra Python dependency).

Like the Transfer VM's: RSA 2048, CN = the listen address, valid 365 days; smapi adds a subjectAltName for the
address (modern clients ignore the CN), so `curl --cacert <the record's ssl_cert>` verifies the server.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from typing import Tuple

from smapi.common import commands


def make_self_signed(directory: str, address: str) -> Tuple[str, str]:
    """Write cert.pem and key.pem (mode 0600) into `directory`; returns their paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    try:
        ipaddress.ip_address(address)
        san = f"IP:{address}"
    except ValueError:
        san = f"DNS:{address}"
    old = os.umask(0o077)
    try:
        commands.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
             "-subj", f"/CN={address}", "-addext", f"subjectAltName={san}",
             "-keyout", key, "-out", cert],
            timeout=60,
        )
    except commands.CommandError as e:
        raise RuntimeError(f"openssl could not make a certificate: {e}") from e
    finally:
        os.umask(old)
    return cert, key


def server_context(cert: str, key: str) -> ssl.SSLContext:
    # TLS 1.2 is the floor, as the Transfer VM forced TLSv1.2.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
