"""`CertVerdict.incomplete`: a chain that lacks the leaf's issuer cannot be judged (a
server that leaves out its intermediate looks like an interceptor's lone leaf), while a
chain that ends in an untrusted CA it carries is untrusted as before."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from fingerprint.trust import TrustStore

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, key: ed25519.Ed25519PrivateKey,
          signer: ed25519.Ed25519PrivateKey, serial: int, *, ca: bool) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(signer, None)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_leaf_without_its_intermediate_is_incomplete(tmp_path: Path) -> None:
    root_key, mid_key, leaf_key = (ed25519.Ed25519PrivateKey.generate() for _ in range(3))
    root = _cert("Root", "Root", root_key, root_key, 1, ca=True)
    mid = _cert("Intermediate", "Root", mid_key, root_key, 2, ca=True)
    leaf = _cert("www.facebook.com", "Intermediate", leaf_key, mid_key, 3, ca=False)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    store = TrustStore(ca_file)
    alone = store.check([_der(leaf)], "www.facebook.com")
    assert not alone.trusted and alone.incomplete
    full = store.check([_der(leaf), _der(mid)], "www.facebook.com")
    assert full.trusted and not full.incomplete


def test_chain_to_a_carried_untrusted_root_is_not_incomplete(tmp_path: Path) -> None:
    trusted_key, rogue_key, leaf_key = (ed25519.Ed25519PrivateKey.generate() for _ in range(3))
    trusted = _cert("Root", "Root", trusted_key, trusted_key, 1, ca=True)
    rogue = _cert("Rogue Root", "Rogue Root", rogue_key, rogue_key, 2, ca=True)
    forged = _cert("www.facebook.com", "Rogue Root", leaf_key, rogue_key, 3, ca=False)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(trusted.public_bytes(serialization.Encoding.PEM))
    verdict = TrustStore(ca_file).check([_der(forged), _der(rogue)], "www.facebook.com")
    assert not verdict.trusted and not verdict.incomplete
