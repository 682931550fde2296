"""Certificate checks for `tls.mitm` and `dns.redirect` (pyOpenSSL).

A chain is *trusted* when it verifies against the trust anchors (`--ca-file`,
default the system store) and *valid for a name* when, in addition, the leaf's
subjectAltName (or CN when there is none) covers the name.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from fingerprint.errors import InputError

if TYPE_CHECKING:
    from cryptography import x509
    from OpenSSL import crypto

# cryptography and pyOpenSSL are imported by the first check: most captures hold no
# certificate (TLS 1.3 encrypts it), and the imports cost a tenth of a small run.


@dataclass(frozen=True)
class CertVerdict:
    trusted: bool
    valid_for_name: bool
    subject: str
    issuer: str
    reason: str


def _names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        return [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def name_matches(pattern: str, name: str) -> bool:
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


class TrustStore:
    """Trust anchors from a PEM file, or the system store."""

    def __init__(self, ca_file: str | Path | None = None) -> None:
        self.ca_file = str(ca_file) if ca_file else None
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise InputError(self.ca_file, "CA file not found")

    @cached_property
    def _store(self) -> crypto.X509Store:
        from OpenSSL import crypto

        store = crypto.X509Store()
        path = self.ca_file or ssl.get_default_verify_paths().openssl_cafile
        try:
            store.load_locations(path)
        except crypto.Error as exc:
            raise InputError(path, f"cannot load CA certificates: {exc}") from exc
        return store

    def check(self, chain_der: list[bytes], name: str | None) -> CertVerdict:
        from cryptography import x509
        from OpenSSL import crypto

        try:
            leaf = x509.load_der_x509_certificate(chain_der[0])
            # cryptography decodes names and extensions lazily: a forged certificate
            # fails here, not at load.
            subject = leaf.subject.rfc4514_string()
            issuer = leaf.issuer.rfc4514_string()
            names = _names(leaf)
        except (ValueError, IndexError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
            return CertVerdict(False, False, "", "", "unparseable certificate")
        valid_name = name is None or any(name_matches(p, name.lower()) for p in names)
        try:
            intermediates = [crypto.X509.from_cryptography(x509.load_der_x509_certificate(d))
                             for d in chain_der[1:8]]
            context = crypto.X509StoreContext(self._store, crypto.X509.from_cryptography(leaf),
                                              intermediates)
            context.verify_certificate()
            trusted, reason = True, "chain verifies"
        except crypto.X509StoreContextError as exc:
            trusted, reason = False, str(exc.args[0] if exc.args else exc)
        except (ValueError, crypto.Error) as exc:
            # crypto.Error: OpenSSL refuses DER that cryptography's parser let through.
            trusted, reason = False, f"unparseable chain: {exc}"
        if trusted and not valid_name:
            reason = f"certificate not valid for {name}"
        return CertVerdict(trusted, valid_name, subject, issuer, reason)
