"""TLS records as seen on the wire (RFC 5246, RFC 8446), parsed defensively.

From the client side: the ClientHello's server name (SNI, RFC 6066) and
whether it offers TLS 1.3.  From the server side: ServerHello, the certificate
chain when it is sent in the clear (TLS 1.2 and older), alerts, and whether the
bytes look like TLS at all (injected blockpages and "Object not found" texts do
not).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONTENT_CCS = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPDATA = 23

HS_CLIENT_HELLO = 1
HS_SERVER_HELLO = 2
HS_CERTIFICATE = 11

_MAX_RECORDS = 64
# Compiled once: struct.unpack_from(format, ...) looks its format up on every call.
_RECORD_HEADER = struct.Struct("!BHH").unpack_from
_U16_PAIR = struct.Struct("!HH").unpack_from
_U16 = struct.Struct("!H").unpack_from


@dataclass(slots=True)
class ClientHello:
    sni: str | None
    offers_tls13: bool
    alpn: tuple[str, ...] = ()


def looks_like_tls_record(data: bytes) -> bool:
    return len(data) >= 3 and data[0] in (20, 21, 22, 23) and data[1] == 3 and data[2] <= 4


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of a client stream (possibly cut short).

    A ClientHello can span TCP segments (post-quantum key shares make it larger
    than one MTU); pass the reassembled prefix.  Returns None when the bytes do
    not start a ClientHello, or when the SNI extension lies past what we have.
    """
    try:
        return _parse_client_hello(data)
    except (struct.error, IndexError, UnicodeDecodeError):
        return None


def _parse_client_hello(data: bytes) -> ClientHello | None:
    if not looks_like_tls_record(data) or data[0] != CONTENT_HANDSHAKE or len(data) < 9:
        return None
    # Handshake messages may span records; join record payloads first.
    length = (data[3] << 8) | data[4]
    if 10 + length > len(data):
        hs = data[5:5 + length]  # the usual case: one record, nothing after it to join
    else:
        body = bytearray()
        pos = 0
        while pos + 5 <= len(data) and len(body) < 1 << 16:
            ctype, _ver, length = _RECORD_HEADER(data, pos)
            if ctype != CONTENT_HANDSHAKE:
                break
            body += data[pos + 5:pos + 5 + length]
            pos += 5 + length
        hs = bytes(body)
    if len(hs) < 4 or hs[0] != HS_CLIENT_HELLO:
        return None
    p = 4 + 2 + 32  # handshake header, legacy_version, random
    sid_len = hs[p]
    p += 1 + sid_len
    (cs_len,) = _U16(hs, p)
    p += 2 + cs_len
    comp_len = hs[p]
    p += 1 + comp_len
    if p + 2 > len(hs):
        return ClientHello(None, False)
    (ext_total,) = _U16(hs, p)
    p += 2
    end = min(len(hs), p + ext_total)
    sni: str | None = None
    tls13 = False
    alpn: list[str] = []
    while p + 4 <= end:
        etype, elen = _U16_PAIR(hs, p)
        ext = hs[p + 4:p + 4 + elen]
        p += 4 + elen
        if etype == 0 and len(ext) >= 5:
            # server_name_list: list length, then (type, length, name) entries
            q = 2
            while q + 3 <= len(ext):
                ntype, nlen = ext[q], _U16(ext, q + 1)[0]
                if ntype == 0:
                    sni = ext[q + 3:q + 3 + nlen].decode("ascii", "backslashreplace").lower()
                    break
                q += 3 + nlen
        elif etype == 43:
            tls13 = b"\x03\x04" in ext[1:]
        elif etype == 16 and len(ext) >= 2:
            q = 2
            while q < len(ext) and len(alpn) < 16:
                n = ext[q]
                alpn.append(ext[q + 1:q + 1 + n].decode("ascii", "backslashreplace"))
                q += 1 + n
    return ClientHello(sni, tls13, tuple(alpn))


@dataclass(slots=True)
class ServerFlight:
    """What the server side of a TLS connection sent, as far as we can read it."""

    is_tls: bool = False
    server_hello: bool = False
    version: int | None = None
    """Negotiated version (0x0303 TLS 1.2, 0x0304 TLS 1.3) when a ServerHello was read."""
    cipher_suite: int | None = None
    """The cipher suite the ServerHello chose."""
    alpn: str = ""
    """The application protocol the ServerHello chose (ALPN), if any."""
    certificates: list[bytes] = field(default_factory=list)
    """DER certificates in the order sent (leaf first); only visible before TLS 1.3."""
    alert: tuple[int, int] | None = None
    """(level, description) of the first plaintext alert."""
    app_data: bool = False
    plaintext_prefix: bytes = b""
    """The first bytes when they are not TLS (an injected text or blockpage)."""


def parse_server_flight(data: bytes) -> ServerFlight:
    """Read records from the start of the server's stream (reassembled prefix)."""
    flight = ServerFlight()
    if not data:
        return flight
    if not looks_like_tls_record(data):
        flight.plaintext_prefix = data[:256]
        return flight
    flight.is_tls = True
    pos = 0
    handshake = bytearray()
    records = 0
    encrypted = False
    while pos + 5 <= len(data) and records < _MAX_RECORDS:
        records += 1
        ctype, _ver, length = _RECORD_HEADER(data, pos)
        payload = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if ctype == CONTENT_HANDSHAKE and not encrypted:
            handshake += payload
            # Read as soon as it grows: a ServerHello's version decides what a later
            # ChangeCipherSpec means.  Other records leave it, and what it says, as is.
            _read_handshake(bytes(handshake), flight)
        elif ctype == CONTENT_ALERT and len(payload) >= 2 and flight.alert is None and not encrypted:
            flight.alert = (payload[0], payload[1])
        elif ctype == CONTENT_CCS:
            # After ChangeCipherSpec everything is encrypted (TLS 1.2) or was already (1.3).
            encrypted = flight.version == 0x0304 or encrypted
        elif ctype == CONTENT_APPDATA:
            flight.app_data = True
        elif ctype not in (CONTENT_HANDSHAKE, CONTENT_ALERT):
            break
    return flight


def _read_handshake(hs: bytes, flight: ServerFlight) -> None:
    pos = 0
    while pos + 4 <= len(hs):
        htype = hs[pos]
        hlen = int.from_bytes(hs[pos + 1:pos + 4], "big")
        body = hs[pos + 4:pos + 4 + hlen]
        if len(body) < hlen:
            return
        pos += 4 + hlen
        try:
            if htype == HS_SERVER_HELLO and not flight.server_hello:
                flight.server_hello = True
                _read_server_hello(body, flight)
            elif htype == HS_CERTIFICATE and not flight.certificates:
                flight.certificates = _certificates(body)
        except (struct.error, IndexError):
            return


def _read_server_hello(body: bytes, flight: ServerFlight) -> None:
    """Version (supported_versions overrides legacy_version), cipher suite and ALPN."""
    (version,) = _U16(body, 0)
    flight.version = version
    p = 2 + 32
    p += 1 + body[p]  # session id
    (flight.cipher_suite,) = _U16(body, p)
    p += 2 + 1  # cipher suite, compression
    if p + 2 <= len(body):
        (ext_total,) = _U16(body, p)
        p += 2
        end = min(len(body), p + ext_total)
        while p + 4 <= end:
            etype, elen = _U16_PAIR(body, p)
            if etype == 43 and elen == 2:
                (flight.version,) = _U16(body, p + 4)
            elif etype == 16 and elen >= 3:
                # ALPN: list length (2), then the one chosen length-prefixed protocol.
                size = body[p + 6]
                flight.alpn = body[p + 7:p + 7 + size].decode("ascii", "replace")
            p += 4 + elen


def _certificates(body: bytes) -> list[bytes]:
    total = int.from_bytes(body[0:3], "big")
    p, end = 3, min(len(body), 3 + total)
    certs: list[bytes] = []
    while p + 3 <= end and len(certs) < 16:
        n = int.from_bytes(body[p:p + 3], "big")
        certs.append(body[p + 3:p + 3 + n])
        p += 3 + n
    return certs


ALERT_NAMES = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
               40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
               46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
               50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
               80: "internal_error", 112: "unrecognized_name"}
