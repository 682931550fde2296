"""Certificates read from a capture are attacker-controlled: a corrupt one is a verdict
("unparseable"), never an exception, even when only OpenSSL (not cryptography's lazy
parser) notices the damage."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fingerprint.trust import TrustStore

_CN = "fuzz-marker.example"


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CN)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _bad_utf8(der: bytes) -> bytes:
    # The CN is a UTF8String: bytes that are not UTF-8 pass cryptography's load and fail later.
    assert der.count(_CN.encode()) == 2
    return der.replace(_CN.encode(), b"\xff\xfe" + _CN.encode()[2:])


def test_corrupt_leaf_is_unparseable_not_an_exception() -> None:
    verdict = TrustStore(None).check([_bad_utf8(_certificate())], "fuzz-marker.example")
    assert not verdict.trusted and verdict.reason == "unparseable certificate"


def test_corrupt_intermediate_is_an_untrusted_chain_not_an_exception() -> None:
    good = _certificate()
    verdict = TrustStore(None).check([good, _bad_utf8(_certificate())], _CN)
    assert not verdict.trusted and verdict.valid_for_name
    assert verdict.reason.startswith("unparseable chain")
