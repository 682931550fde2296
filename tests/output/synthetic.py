"""Synthetic captures for the output tests: a small censored network, written as pcapng.

The packets are built with scapy's layers and written through the project's own
`CaptureWriter`, so the tests exercise the same replay path as real captures.
Addresses are documentation ranges; nothing here is sent anywhere.

The network: resolver 198.51.100.53, Twitter at 104.244.42.1 (inside the
catalog's Twitter network), Telegram at 203.0.113.20, a control server at
203.0.113.99.  Twitter's DNS answer is raced by a forged one and its
ClientHello is answered by a forged RST (IP TTL 64, while the server's packets
arrive with TTL 47); Telegram's address swallows SYNs; controls work.
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP

from fingerprint.capture.writer import CaptureWriter

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


def client_hello(sni: str) -> bytes:
    """A TLS 1.2 ClientHello record with one cipher suite and the SNI extension (RFC 6066)."""
    name = sni.encode()
    server_name = struct.pack("!BH", 0, len(name)) + name
    sni_ext = struct.pack("!HHH", 0, len(server_name) + 2, len(server_name)) + server_name
    body = (b"\x03\x03" + bytes(32) + b"\x00" + struct.pack("!HH", 2, 0xC02F) + b"\x01\x00"
            + struct.pack("!H", len(sni_ext)) + sni_ext)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


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


def server_flight(cert: bytes) -> bytes:
    """ServerHello (TLS 1.2, ECDHE-RSA-AES128-GCM-SHA256) + Certificate, one record."""
    hello_body = b"\x03\x03" + bytes(32) + b"\x00" + struct.pack("!H", 0xC02F) + b"\x00"
    hello = b"\x02" + len(hello_body).to_bytes(3, "big") + hello_body
    chain = len(cert).to_bytes(3, "big") + cert
    cert_body = len(chain).to_bytes(3, "big") + chain
    certificate = b"\x0b" + len(cert_body).to_bytes(3, "big") + cert_body
    handshake = hello + certificate
    return b"\x16\x03\x03" + struct.pack("!H", len(handshake)) + handshake


class CaptureBuilder:
    """Collects (timestamp, raw IP packet) pairs in capture order."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, bytes]] = []
        self._port = 40000

    def add(self, ts: float, packet: IP) -> None:
        self.frames.append((ts, bytes(packet)))

    def dns(self, ts: float, qname: str, txid: int,
            answers: list[tuple[float, str, int]]) -> None:
        """A query, then each (delay, address, ip_ttl) answer."""
        sport = self._next_port()
        self.add(ts, IP(src=CLIENT, dst=RESOLVER, ttl=64, id=txid)
                 / UDP(sport=sport, dport=53) / DNS(id=txid, rd=1, qd=DNSQR(qname=qname)))
        for n, (delay, address, ttl) in enumerate(answers):
            self.add(ts + delay, IP(src=RESOLVER, dst=CLIENT, ttl=ttl, id=500 + n)
                     / UDP(sport=53, dport=sport)
                     / DNS(id=txid, qr=1, rd=1, ra=1, qd=DNSQR(qname=qname),
                           an=DNSRR(rrname=qname, ttl=300, rdata=address)))

    def tls(self, ts: float, server: str, sni: str, reply: str, cert: bytes = b"") -> None:
        """One TLS attempt; reply is 'hello' (ServerHello), 'rst' (forged RST, TTL 64)."""
        sport = self._next_port()
        cseq, sseq = 1000, 9000
        up = IP(src=CLIENT, dst=server, ttl=64)
        down = IP(src=server, dst=CLIENT, ttl=47, flags="DF")
        self.add(ts, up / TCP(sport=sport, dport=443, flags="S", seq=cseq))
        self.add(ts + 0.010, down / TCP(sport=443, dport=sport, flags="SA", seq=sseq,
                                        ack=cseq + 1, window=65160))
        self.add(ts + 0.011, up / TCP(sport=sport, dport=443, flags="A", seq=cseq + 1,
                                      ack=sseq + 1))
        hello = client_hello(sni)
        self.add(ts + 0.012, up / TCP(sport=sport, dport=443, flags="PA", seq=cseq + 1,
                                      ack=sseq + 1) / hello)
        if reply == "hello":
            self.add(ts + 0.025, down / TCP(sport=443, dport=sport, flags="PA", seq=sseq + 1,
                                            ack=cseq + 1 + len(hello)) / server_flight(cert))
            self.add(ts + 0.030, up / TCP(sport=sport, dport=443, flags="FA",
                                          seq=cseq + 1 + len(hello), ack=sseq + 1))
        else:
            forged = IP(src=server, dst=CLIENT, ttl=64, id=0)
            self.add(ts + 0.014, forged / TCP(sport=443, dport=sport, flags="R",
                                              seq=sseq + 1, window=0))

    def blackholed_syns(self, ts: float, server: str, tries: int = 3) -> None:
        sport = self._next_port()
        for n in range(tries):
            self.add(ts + n, IP(src=CLIENT, dst=server, ttl=64)
                     / TCP(sport=sport, dport=443, flags="S", seq=7000))

    def connect_ok(self, ts: float, server: str) -> None:
        sport = self._next_port()
        self.add(ts, IP(src=CLIENT, dst=server, ttl=64) / TCP(sport=sport, dport=443, flags="S",
                                                               seq=5000))
        self.add(ts + 0.01, IP(src=server, dst=CLIENT, ttl=50) / TCP(
            sport=443, dport=sport, flags="SA", seq=100, ack=5001))
        self.add(ts + 0.02, IP(src=CLIENT, dst=server, ttl=64) / TCP(
            sport=sport, dport=443, flags="R", seq=5001))

    def write(self, path: Path, section_comment: str | None = None) -> Path:
        with CaptureWriter(path, section_comment=section_comment) as out:
            for ts, data in self.frames:
                out.write(ts, data)
        return path

    def _next_port(self) -> int:
        self._port += 1
        return self._port


def censored_network(start: float = START, twitter_blocked: bool = True) -> CaptureBuilder:
    """The scenario of the module docstring (or with Twitter working when not blocked)."""
    cap = CaptureBuilder()
    cap.dns(start, "example.com", 0x1111, [(0.030, CONTROL, 52)])
    if twitter_blocked:
        cap.dns(start + 0.1, "twitter.com", 0x2222, [(0.002, "8.7.198.45", 64),
                                                     (0.031, TWITTER, 52)])
    else:
        cap.dns(start + 0.1, "twitter.com", 0x2222, [(0.031, TWITTER, 52)])
    cap.dns(start + 0.2, "telegram.org", 0x3333, [(0.030, TELEGRAM, 52)])
    cap.tls(start + 1.0, TWITTER, "example.com", "hello", certificate_der("example.com"))
    cap.tls(start + 1.5, TWITTER, "twitter.com", "rst" if twitter_blocked else "hello",
            certificate_der("twitter.com"))
    cap.connect_ok(start + 2.0, CONTROL)
    cap.blackholed_syns(start + 2.5, TELEGRAM)
    return cap


def verdict_summary(result: Any) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """What must survive a replay: (platform, target, technique, signatures) per finding."""
    return sorted((f.platform, f.target, f.technique.value, tuple(f.signatures))
                  for f in result.verdicts.findings)
