"""TLS (443) and plain HTTP (80) servers on every platform's lab address.

Each address presents a certificate for its platform's names, signed by the
lab CA; the SNI picks the certificate of the platform that owns the name, so
a control SNI sent to a platform's address gets the control certificate, as a
CDN front would serve it.  `GET /bytes/N` returns N bytes (for throughput
comparisons); any other path returns a short page naming the site.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

from fingerprint.lab.services import _http
from fingerprint.lab.services._service import ready_and_wait, run_sites_service

MAX_BYTES = 10_000_000
IDLE_TIMEOUT = 60.0
"""How long the server waits for a TLS handshake or a request before it closes with a
FIN: nginx's defaults (ssl_handshake_timeout and client_header_timeout, 60 s; nginx.org
ngx_http_ssl_module and ngx_http_core_module docs).  A shorter wait let the server of a
flow whose ClientHello the censor dropped close it within a paced run, a FIN arriving
long after the trigger."""


@dataclass(frozen=True)
class Site:
    address: str
    platform: str
    names: tuple[str, ...]
    context: ssl.SSLContext


def _owner(sites: list[Site], name: str) -> Site | None:
    labels = name.lower().rstrip(".").split(".")
    for i in range(len(labels)):
        suffix = ".".join(labels[i:])
        for site in sites:
            if suffix in site.names:
                return site
    return None


def _handler(site: Site, sites: list[Site], scheme: str) -> _http.Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _http.read_request(reader, IDLE_TIMEOUT)
            if request is None:
                return
            if request.target.startswith("/bytes/") and request.target[7:].isdigit():
                size = min(int(request.target[7:]), MAX_BYTES)
                writer.write(_http.response(200, "OK", b"x" * size, "application/octet-stream"))
            else:
                owner = _owner(sites, request.host)
                body = (f"fingerprint lab server\nplatform: {owner.platform if owner else '-'}\n"
                        f"host: {request.host}\naddress: {site.address}\nscheme: {scheme}\n")
                writer.write(_http.response(200, "OK", body.encode()))
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
    return handle


def _context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve(args: argparse.Namespace) -> None:
    config = json.loads(Path(args.sites).read_text())
    sites = [Site(s["address"], s["platform"], tuple(n.lower() for n in s["names"]),
                  _context(s["cert"], s["key"])) for s in config["sites"]]

    def pick_certificate(sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None,
                         _context: ssl.SSLContext) -> None:
        owner = _owner(sites, name) if name else None
        if owner is not None:
            sslobj.context = owner.context

    servers = []
    for site in sites:
        site.context.sni_callback = pick_certificate
        servers.append(await asyncio.start_server(_handler(site, sites, "https"), site.address,
                                                  443, ssl=site.context,
                                                  ssl_handshake_timeout=IDLE_TIMEOUT))
        servers.append(await asyncio.start_server(_handler(site, sites, "http"), site.address, 80))
    await ready_and_wait(args.ready_file)


def main() -> None:
    run_sites_service(__doc__ or "", serve)


if __name__ == "__main__":
    main()
