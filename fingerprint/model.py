"""The closed vocabularies: techniques, platform status and failure strings.

Technique values are the contract's (`report.schema.json`); failure strings are
OONI's (ooni/spec df-007-errors, as generated into probe-cli's netxlite).
"""

from __future__ import annotations

from enum import StrEnum


class Technique(StrEnum):
    DNS_INJECTION = "dns.injection"
    DNS_REDIRECT = "dns.redirect"
    DNS_NXDOMAIN = "dns.nxdomain"
    DNS_ERROR = "dns.error"
    DNS_DROP = "dns.drop"
    TLS_SNI_RESET = "tls.sni_reset"
    TLS_SNI_DROP = "tls.sni_drop"
    TLS_SNI_FIN = "tls.sni_fin"
    TLS_SNI_THROTTLE = "tls.sni_throttle"
    TLS_MITM = "tls.mitm"
    HTTP_BLOCKPAGE = "http.blockpage"
    HTTP_RESET = "http.reset"
    HTTP_FIN = "http.fin"
    HTTP_DROP = "http.drop"
    IP_BLACKHOLE = "ip.blackhole"
    IP_REJECT = "ip.reject"
    IP_RESET = "ip.reset"
    QUIC_SNI_DROP = "quic.sni_drop"
    QUIC_DROP = "quic.drop"
    TLS_ECH_DROP = "tls.ech_drop"
    TLS_ECH_RESET = "tls.ech_reset"


class Status(StrEnum):
    BLOCKED = "blocked"
    ACCESSIBLE = "accessible"
    INCONCLUSIVE = "inconclusive"


class Failure(StrEnum):
    """OONI df-007 failure strings (exact spelling matters for OONI tooling)."""

    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    EOF_ERROR = "eof_error"
    GENERIC_TIMEOUT = "generic_timeout_error"
    HOST_UNREACHABLE = "host_unreachable"
    NETWORK_UNREACHABLE = "network_unreachable"
    DNS_NXDOMAIN = "dns_nxdomain_error"
    DNS_REFUSED = "dns_refused_error"
    DNS_SERVFAIL = "dns_servfail_error"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_BOGON = "dns_bogon_error"
    SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
    SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
    SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
    SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"


class Mode(StrEnum):
    """Where a censor sits relative to the flow (CenTrace's terms)."""

    ON_PATH = "on-path"
    IN_PATH = "in-path"
    UNKNOWN = "unknown"
