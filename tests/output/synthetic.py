"""Synthetic captures for the output tests: a small censored network, written as pcapng.

The packets are crafted with `fingerprint.testing.craft` (the builder behind every
crafted fixture) and written through the project's own `CaptureWriter`, so the
tests exercise the same replay path as real captures.
Addresses are documentation ranges; nothing here is sent anywhere.

The network: resolver 198.51.100.53, Twitter at 104.244.42.1 (inside the
catalog's Twitter network), Telegram at 203.0.113.20, a control server at
203.0.113.99.  Twitter's DNS answer is raced by a forged one and its
ClientHello is answered by a forged RST (IP TTL 64, while the server's packets
arrive with TTL 47); Telegram's address swallows SYNs; controls work.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scapy.packet import Packet as ScapyPacket

from fingerprint.testing.craft import Capture

CLIENT = "192.0.2.2"
RESOLVER = "198.51.100.53"
TWITTER = "104.244.42.1"
TELEGRAM = "203.0.113.20"
CONTROL = "203.0.113.99"
START = 1_700_000_000.0
"""2023-11-14 22:13:20 UTC."""

CATALOG_YAML = f"""\
platforms:
  twitter:
    name: Twitter / X
    domains: [twitter.com]
    networks: [104.244.40.0/21]
  telegram:
    name: Telegram
    domains: [telegram.org]
    addresses: [{TELEGRAM}]
control:
  domains: [example.com]
  addresses: [{CONTROL}]
"""

SIGNATURE_YAML = """\
id: test-rst-ttl64
title: Synthetic injector that sends RST with IP TTL 64 (test data only)
kind: censor
techniques: [tls.sni_reset]
status: experimental
references:
  - source: synthetic capture built by tests/output/conftest.py
match:
  condition: all
  matchers:
    - {field: tcp.flags, op: contains, value: R}
    - {field: ip.ttl, op: equals, value: 64}
fixtures:
  positive: [tests/output]
"""


_TEST_CA: tuple[Any, x509.Certificate] | None = None


def _test_ca() -> tuple[Any, x509.Certificate]:
    """One CA for the synthetic world, made once per test session (see `trust_store`)."""
    global _TEST_CA
    if _TEST_CA is None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "synthetic test CA")])
        now = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        _TEST_CA = (key, cert)
    return _TEST_CA


def write_test_ca(path: Path) -> Path:
    """The synthetic world's CA as PEM, for `TrustStore(path)`: its servers are genuine."""
    path.write_bytes(_test_ca()[1].public_bytes(serialization.Encoding.PEM))
    return path


def certificate_der(name: str) -> bytes:
    """A certificate for `name` from the synthetic world's CA."""
    ca_key, ca_cert = _test_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


class CaptureBuilder(Capture):
    """A crafted capture of the synthetic network (`fingerprint.testing.craft`), plus `add`
    for tests that place their own scapy packets at absolute times."""

    def __init__(self, start: float = START, seed: int = 1) -> None:
        super().__init__(seed=seed, start=start, client=CLIENT)

    def add(self, ts: float, packet: ScapyPacket) -> None:
        self.emit(ts - self.start, packet)


def censored_network(start: float = START, twitter_blocked: bool = True) -> CaptureBuilder:
    """The scenario of the module docstring (or with Twitter working when not blocked)."""
    cap = CaptureBuilder(start)
    cap.dns(RESOLVER, "example.com", at=0.0, txid=0x1111).respond([CONTROL], delay_ms=30, ttl=52)
    query = cap.dns(RESOLVER, "twitter.com", at=0.1, txid=0x2222)
    if twitter_blocked:
        query.respond(["8.7.198.45"], delay_ms=2, ttl=64, ip_id=0, df=False)
    query.respond([TWITTER], delay_ms=31, ttl=52)
    cap.dns(RESOLVER, "telegram.org", at=0.2, txid=0x3333).respond([TELEGRAM], delay_ms=30, ttl=52)
    _tls(cap, 1.0, "example.com", blocked=False)
    _tls(cap, 1.5, "twitter.com", blocked=twitter_blocked)
    control = cap.tcp(CONTROL, 443, at=2.0, server_ttl=50, rtt_ms=10).handshake()
    control.client_close(at_ms=10, rst=True)
    cap.tcp(TELEGRAM, 443, at=2.5).syn_unanswered(retries=2)
    return cap


def _tls(cap: Capture, at: float, sni: str, *, blocked: bool) -> None:
    """A TLS attempt to Twitter: the server's certificate, or a forged RST (IP TTL 64)."""
    flow = cap.tcp(TWITTER, 443, at=at, server_ttl=47, rtt_ms=10).handshake()
    flow.client_hello(sni)
    if blocked:
        flow.inject("R", at_ms=2, ttl=64, ip_id=0, window=0)
        return
    flow.server_hello([certificate_der(sni)], at_ms=13)
    flow.client_close(at_ms=18)


def verdict_summary(result: Any) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """What must survive a replay: (platform, target, technique, signatures) per finding."""
    return sorted((f.platform, f.target, f.technique.value, tuple(f.signatures))
                  for f in result.verdicts.findings)
