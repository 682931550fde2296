"""QUIC servers (UDP 443) on every platform's lab address, with aioquic.

Each address answers QUIC v1 and v2 with its platform's certificate (signed by
the lab CA), so a client's Initial gets the server's Initial and Handshake
packets back: the success signal the QUIC probe and the analysis look for
(RFC 9000 section 17.2.2).  The server completes handshakes and serves no
HTTP/3 beyond that; unlike the TCP server it does not pick a certificate by
SNI (aioquic takes one certificate per server), which the QUIC analysis does
not read: the certificate travels encrypted in the Handshake packets.

Why aioquic: a maintained QUIC implementation (RFC 9000/9001/9369) that runs
in the lab's Python; the lab's QUIC must be a real one, not the probe's own
code answering itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aioquic.asyncio.server import serve as quic_serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion

from fingerprint.lab.services._service import ready_and_wait, run_sites_service

QUIC_PORT = 443
ALPN = ["h3", "hq-interop"]
IDLE_TIMEOUT = 20.0


def configuration(cert: str, key: str) -> QuicConfiguration:
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN, idle_timeout=IDLE_TIMEOUT,
                               supported_versions=[QuicProtocolVersion.VERSION_1,
                                                   QuicProtocolVersion.VERSION_2])
    config.load_cert_chain(cert, key)
    return config


async def start(sites: list[dict[str, Any]], port: int = QUIC_PORT) -> list[Any]:
    """One aioquic server per site address; returns the servers (close() each to stop)."""
    servers = []
    for site in sites:
        servers.append(await quic_serve(site["address"], port,
                                        configuration=configuration(site["cert"], site["key"])))
    return servers


async def serve(args: argparse.Namespace) -> None:
    config = json.loads(Path(args.sites).read_text())
    await start(config["sites"])
    await ready_and_wait(args.ready_file)


def main() -> None:
    run_sites_service(__doc__ or "", serve)


if __name__ == "__main__":
    main()
