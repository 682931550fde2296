"""The TLS server-flight parser: what a ServerHello chose."""

from __future__ import annotations

import struct

from fingerprint.protocols.tls import parse_server_flight


def server_hello(extensions: bytes) -> bytes:
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01" + b"\x00"
    body += struct.pack("!H", len(extensions)) + extensions
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


def test_version_suite_and_alpn_come_from_the_server_hello() -> None:
    alpn = struct.pack("!HH", 16, 5) + struct.pack("!H", 3) + b"\x02h2"
    versions = struct.pack("!HH", 43, 2) + b"\x03\x04"
    flight = parse_server_flight(server_hello(alpn + versions))
    assert flight.server_hello
    assert flight.version == 0x0304
    assert flight.cipher_suite == 0x1301
    assert flight.alpn == "h2"


def test_no_extensions_keeps_legacy_version_and_no_alpn() -> None:
    flight = parse_server_flight(server_hello(b""))
    assert flight.version == 0x0303
    assert flight.cipher_suite == 0x1301
    assert flight.alpn == ""
