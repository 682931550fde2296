"""Small pieces several crafted-capture tests build on: a one-platform catalog, the
built-in one with platforms marked as serving QUIC, a TLS
attempt that is answered or goes silent, and the probe's confirmation-round note for an
attempt (`fingerprint.analysis.confirm.NOTES_KEY`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from fingerprint.catalog import Catalog, catalog_to_yaml, load_catalog
from fingerprint.testing.craft import START, Capture, DnsQuery, QuicFlow, TcpFlow

TWITTER_ADDRESS = "203.0.113.10"
"""Twitter's address in `TWITTER_CATALOG`."""
TWITTER_CATALOG = f"""platforms:
  twitter:
    name: Twitter / X
    domains: [twitter.com]
    addresses: [{TWITTER_ADDRESS}]
control:
  domains: [example.com]
  addresses: [203.0.113.99]
"""
"""One platform (twitter.com at `TWITTER_ADDRESS`) and the control example.com."""


def write_catalog(folder: Path, text: str = TWITTER_CATALOG) -> Path:
    """The catalog beside a crafted capture, for `replay(..., catalog=...)`."""
    path = folder / "catalog.yaml"
    path.write_text(text)
    return path


def write_catalog_serving_quic(folder: Path, *platform_ids: str) -> Path:
    """The built-in catalog with `platform_ids` listed as serving QUIC (`quic: true`),
    written beside a crafted capture for `replay(..., catalog=...)`."""
    catalog = load_catalog()
    platforms = dict(catalog.platforms)
    for pid in platform_ids:
        platforms[pid] = replace(platforms[pid], quic=True)
    return write_catalog(folder, catalog_to_yaml(Catalog(platforms, catalog.control_domains,
                                                         catalog.control_addresses)))


def tls_attempt(cap: Capture, server: str, sni: str, at: float, *, answered: bool) -> TcpFlow:
    """A handshake and a ClientHello for `sni`: answered with a ServerHello, or silent
    (the client retransmits three times, then gives up with an RST after 2 s)."""
    flow = cap.tcp(server, 443, at=at)
    flow.handshake()
    flow.client_hello(sni)
    if answered:
        flow.server_hello()
    else:
        for retry_ms in (200, 600, 1400):
            flow.retransmit(at_ms=retry_ms)
        flow.client_close(at_ms=2000, rst=True)
    return flow


def round_note(attempt: TcpFlow | DnsQuery | QuicFlow, name: str, at: float) -> dict[str, Any]:
    """The confirmation round's note naming one attempt (its destination and source port)."""
    if isinstance(attempt, DnsQuery):
        return {"name": name, "dst": attempt.resolver, "dport": 53, "sport": attempt.sport,
                "proto": "udp", "at": START + at}
    if isinstance(attempt, QuicFlow):
        return {"name": name, "dst": attempt.server, "dport": attempt.dport,
                "sport": attempt.sport, "proto": "udp", "at": START + at}
    return {"name": name, "dst": attempt.server, "dport": attempt.dport, "sport": attempt.sport,
            "proto": "tcp", "at": START + at}
