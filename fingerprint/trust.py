"""Certificate checks for `tls.mitm` and `dns.redirect` (pyOpenSSL).

A chain is *trusted* when it verifies against the trust anchors (`--ca-file`,
default the system store) and *valid for a name* when, in addition, the leaf's
subjectAltName (or CN when there is none) covers the name.

Whether the chain leads to a trusted root does not depend on when it is checked;
whether its certificates were within their validity does, and a capture is
judged at the time it was taken, not today: a certificate that expired since is
no sign of interception.  The chain is therefore verified without time checks,
and the validity dates are compared with the capture's timestamp separately
(`CertVerdict.note`); without a usable timestamp validity is unknown.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
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
    note: str = ""
    """Validity at capture time when it is not simply fine: expired or not yet valid
    then (a note, not interception), or unknown (no usable timestamp)."""
    incomplete: bool = False
    """Untrusted because the leaf's issuer is neither in the chain sent nor a trust anchor:
    a server that leaves out its intermediate (browsers fetch it, RFC 5280 4.2.2.1
    authority information access) looks the same as an interceptor's lone leaf."""


X509_V_FLAG_NO_CHECK_TIME = 0x200000
"""OpenSSL's flag (x509_vfy.h): build and verify the chain without comparing dates."""
ISSUER_NOT_FOUND = (20, 21)
"""OpenSSL verify errors (x509_vfy.h) for an issuer found neither in the chain nor the
store: X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, and _UNABLE_TO_VERIFY_LEAF_SIGNATURE
(the same for a chain of the leaf alone)."""
EARLIEST_CAPTURE = 946684800.0
"""2000-01-01 UTC: earlier packet times are unset clocks, not capture times."""


def usable_capture_time(ts: float | None) -> float | None:
    """`ts` when it can be a real capture time (after 2000, not in the future)."""
    if ts is None or ts != ts or ts < EARLIEST_CAPTURE or ts > time.time() + 86400:
        return None
    return ts


def _validity_note(certs: list[x509.Certificate], at: float | None) -> str:
    if at is None:
        return "validity unknown: the capture has no usable timestamps"
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    for cert in certs:
        if when > cert.not_valid_after_utc:
            return (f"certificate {cert.subject.rfc4514_string()} had expired at capture time "
                    f"({cert.not_valid_after_utc:%Y-%m-%d} < {when:%Y-%m-%d})")
        if when < cert.not_valid_before_utc:
            return (f"certificate {cert.subject.rfc4514_string()} was not yet valid at capture "
                    f"time ({cert.not_valid_before_utc:%Y-%m-%d} > {when:%Y-%m-%d})")
    return ""


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
        # Dates are judged against the capture's time (`check`), not today's.
        store.set_flags(X509_V_FLAG_NO_CHECK_TIME)
        return store

    def check(self, chain_der: list[bytes], name: str | None,
              at: float | None = None) -> CertVerdict:
        """Verify a chain (DER, leaf first) for `name`; `at` is the capture time of the
        flow that carried it (None: unknown, dates not judged)."""
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
        note = ""
        incomplete = False
        try:
            parsed = [x509.load_der_x509_certificate(d) for d in chain_der[1:8]]
            note = _validity_note([leaf, *parsed], usable_capture_time(at))
            intermediates = [crypto.X509.from_cryptography(c) for c in parsed]
            context = crypto.X509StoreContext(self._store, crypto.X509.from_cryptography(leaf),
                                              intermediates)
            context.verify_certificate()
            trusted, reason = True, "chain verifies"
        except crypto.X509StoreContextError as exc:
            trusted, reason = False, str(exc.args[0] if exc.args else exc)
            code, depth = (exc.errors[:2] if len(exc.errors) >= 2 else (0, -1))
            incomplete = code in ISSUER_NOT_FOUND and depth == 0
        except (ValueError, crypto.Error) as exc:
            # crypto.Error: OpenSSL refuses DER that cryptography's parser let through.
            trusted, reason = False, f"unparseable chain: {exc}"
        if trusted and not valid_name:
            reason = f"certificate not valid for {name}"
        return CertVerdict(trusted, valid_name, subject, issuer, reason, note, incomplete)
