"""ECH (0xfe0d) and ESNI (0xffce) in the ClientHello parser; the ClientHello builder."""

from __future__ import annotations

import random
import struct

import pytest

from fingerprint.protocols import tls


def test_grease_ech_is_read_as_outer_ech_with_the_outer_sni() -> None:
    rng = random.Random(1)
    hello = tls.parse_client_hello(tls.build_client_hello("cloudflare-ech.com", rng, grease_ech=True))
    assert hello is not None
    assert hello.sni == "cloudflare-ech.com"
    assert hello.ech_present and not hello.esni_present
    assert hello.ech is not None
    assert hello.ech.ech_type == tls.ECH_OUTER
    assert (hello.ech.kdf_id, hello.ech.aead_id) == (tls.HPKE_KDF_SHA256, tls.HPKE_AEAD_AES128GCM)
    assert hello.ech.enc_length == 32
    assert hello.ech.payload_length in (144, 176, 208, 240)


def test_without_ech() -> None:
    hello = tls.parse_client_hello(tls.build_client_hello("example.com", random.Random(2)))
    assert hello is not None and not hello.ech_present and hello.offers_tls13
    assert hello.alpn == ("h2", "http/1.1")


def _with_extension(etype: int, body: bytes, sni: str | None = "example.com") -> bytes:
    """A ClientHello record with one more extension appended."""
    message = tls.build_client_hello(sni, random.Random(3), record=False)
    # Extensions length sits right before the extensions; rebuild with the new one.
    extension = struct.pack("!HH", etype, len(body)) + body
    body_len = int.from_bytes(message[1:4], "big") + len(extension)
    p = 4 + 2 + 32
    p += 1 + message[p]
    p += 2 + struct.unpack_from("!H", message, p)[0]
    p += 1 + message[p]
    (ext_total,) = struct.unpack_from("!H", message, p)
    new = (message[:1] + body_len.to_bytes(3, "big") + message[4:p]
           + struct.pack("!H", ext_total + len(extension)) + message[p + 2:] + extension)
    return b"\x16\x03\x01" + struct.pack("!H", len(new)) + new


def test_inner_ech_and_cut_short_ech_still_count_as_present() -> None:
    inner = tls.parse_client_hello(_with_extension(tls.EXT_ECH, b"\x01"))
    assert inner is not None and inner.ech is not None and inner.ech.ech_type == tls.ECH_INNER
    short = tls.parse_client_hello(_with_extension(tls.EXT_ECH, b"\x00\x00\x01"))
    assert short is not None and short.ech_present and short.ech is not None
    assert short.ech.payload_length == 0
    empty = tls.parse_client_hello(_with_extension(tls.EXT_ECH, b""))
    assert empty is not None and empty.ech_present


def test_esni_extension() -> None:
    # draft-ietf-tls-esni-02: suite, key share (group, key), record digest, encrypted sni.
    body = (b"\x13\x01" + struct.pack("!HH", 0x1D, 32) + bytes(32) + struct.pack("!H", 32) + bytes(32)
            + struct.pack("!H", 40) + bytes(40))
    hello = tls.parse_client_hello(_with_extension(tls.EXT_ESNI, body, sni=None))
    assert hello is not None and hello.esni_present and not hello.ech_present and hello.sni is None


def test_message_parser_equals_record_parser() -> None:
    rng = random.Random(4)
    message = tls.build_client_hello("x.example", rng, record=False, grease_ech=True)
    record = b"\x16\x03\x01" + struct.pack("!H", len(message)) + message
    assert tls.parse_client_hello_message(message) == tls.parse_client_hello(record)


@pytest.mark.parametrize("cut", [5, 40, 80, 120])
def test_cut_short_message_never_raises(cut: int) -> None:
    message = tls.build_client_hello("x.example", random.Random(5), record=False, grease_ech=True)
    tls.parse_client_hello_message(message[:cut])
    assert tls.parse_client_hello_message(b"\x02" + message[1:]) is None
