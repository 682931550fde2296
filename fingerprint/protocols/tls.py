"""TLS records as seen on the wire (RFC 5246, RFC 8446), parsed defensively.

From the client side: the ClientHello's server name (SNI, RFC 6066), whether
it offers TLS 1.3, its ALPN, and whether it carries Encrypted Client Hello
(extension 0xfe0d, RFC 9849 / draft-ietf-tls-esni-22 section 5) or the older
encrypted SNI (0xffce, draft-ietf-tls-esni-02 to -06).  With ECH the SNI read
is the outer ClientHello's (the public name); the inner one is encrypted.
From the server side: ServerHello, the certificate chain when it is sent in
the clear (TLS 1.2 and older), alerts, and whether the bytes look like TLS at
all (injected blockpages and "Object not found" texts do not).
"""

from __future__ import annotations

import random
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


EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXT_QUIC_TRANSPORT_PARAMETERS = 0x39
EXT_ECH = 0xFE0D
"""encrypted_client_hello (RFC 9849; draft-ietf-tls-esni-13 and later)."""
EXT_ESNI = 0xFFCE
"""encrypted_server_name of the ESNI drafts (-01 to -06), deployed 2018-2020."""

ECH_OUTER = 0
ECH_INNER = 1


@dataclass(slots=True, frozen=True)
class EchExtension:
    """The encrypted_client_hello extension of a ClientHello (what is in clear).

    A GREASE ECH extension (RFC 9849 section 6.2) looks the same: a middlebox
    cannot tell it from a real one, which is why blocking on it is blocking ECH.
    """

    ech_type: int
    """0 outer (sent on the wire), 1 inner (only inside the encrypted payload)."""
    kdf_id: int = 0
    aead_id: int = 0
    config_id: int = 0
    enc_length: int = 0
    payload_length: int = 0


@dataclass(slots=True)
class ClientHello:
    sni: str | None
    """server_name; the outer (public) name when the ClientHello carries ECH."""
    offers_tls13: bool
    alpn: tuple[str, ...] = ()
    ech: EchExtension | None = None
    esni_present: bool = False

    @property
    def ech_present(self) -> bool:
        return self.ech is not None


def looks_like_tls_record(data: bytes) -> bool:
    return len(data) >= 3 and data[0] in (20, 21, 22, 23) and data[1] == 3 and data[2] <= 4


def parse_client_hello_message(hs: bytes) -> ClientHello | None:
    """A ClientHello handshake message without record header (QUIC CRYPTO data).

    Like `parse_client_hello`, a prefix of the message is read as far as it goes.
    """
    try:
        return _parse_hello_message(hs)
    except (struct.error, IndexError, UnicodeDecodeError):
        return None


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
    return _parse_hello_message(hs)


def _parse_hello_message(hs: bytes) -> ClientHello | None:
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
    ech: EchExtension | None = None
    esni = False
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
        elif etype == 0xFE0D:  # EXT_ECH (literals: no global lookup per extension)
            ech = _read_ech(ext)
        elif etype == 0xFFCE:  # EXT_ESNI
            esni = True
    return ClientHello(sni, tls13, tuple(alpn), ech, esni)


def _read_ech(ext: bytes) -> EchExtension:
    """ECHClientHello (RFC 9849 section 5): type, then for outer: cipher suite, config id,
    enc<0..2^16-1>, payload<1..2^16-1>.  Cut-short fields are left at 0."""
    if not ext:
        return EchExtension(-1)
    if ext[0] != ECH_OUTER or len(ext) < 8:
        return EchExtension(ext[0])
    kdf_id, aead_id = _U16_PAIR(ext, 1)
    config_id = ext[5]
    (enc_len,) = _U16(ext, 6)
    payload_len = _U16(ext, 8 + enc_len)[0] if 10 + enc_len <= len(ext) else 0
    return EchExtension(ECH_OUTER, kdf_id, aead_id, config_id, enc_len, payload_len)


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


# --------------------------------------------------------------------------- builder

# HPKE identifiers (RFC 9180 section 7): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM.
HPKE_KEM_X25519 = 0x0020
HPKE_KDF_SHA256 = 0x0001
HPKE_AEAD_AES128GCM = 0x0001
_GREASE_ECH_PAYLOADS = (144, 176, 208, 240)
"""Payload sizes for GREASE ECH: a real ECH payload is an inner ClientHello padded
to a multiple of 32 plus the 16-byte AEAD tag (RFC 9849 section 6.1.3)."""


def _extension(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def grease_ech_extension(rng: random.Random) -> bytes:
    """An outer encrypted_client_hello extension with random content (RFC 9849 section 6.2).

    What a client without an ECH configuration sends so that ECH does not stand
    out: a random config id, an HPKE suite it supports, an `enc` the size of an
    X25519 public key and a payload of plausible size, all random.
    """
    enc = rng.randbytes(32)
    payload = rng.randbytes(rng.choice(_GREASE_ECH_PAYLOADS))
    body = (bytes([ECH_OUTER]) + struct.pack("!HH", HPKE_KDF_SHA256, HPKE_AEAD_AES128GCM)
            + bytes([rng.randrange(256)]) + struct.pack("!H", len(enc)) + enc
            + struct.pack("!H", len(payload)) + payload)
    return _extension(EXT_ECH, body)


def build_client_hello(sni: str | None, rng: random.Random, *,
                       alpn: tuple[str, ...] = ("h2", "http/1.1"), tls12: bool = True,
                       grease_ech: bool = False, quic_transport_parameters: bytes | None = None,
                       record: bool = True) -> bytes:
    """A ClientHello offering TLS 1.3 (and 1.2 unless `tls12=False`) for `sni`.

    `grease_ech` adds a GREASE encrypted_client_hello extension; `sni` is then
    the outer name.  `quic_transport_parameters` adds that extension (RFC 9001
    section 8.2; QUIC needs TLS 1.3 only).  `record=False` gives the bare
    handshake message, as QUIC carries it in CRYPTO frames.  The key share is
    random bytes: a probe never completes the handshake, it only needs the
    server's first flight.
    """
    extensions = b""
    if sni is not None:
        name = sni.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions += _extension(EXT_SERVER_NAME, struct.pack("!H", len(entry)) + entry)
    extensions += _extension(10, b"\x00\x04\x00\x1d\x00\x17")            # groups x25519, P-256
    extensions += _extension(13, b"\x00\x08\x04\x03\x08\x04\x04\x01\x05\x03")  # signature_algorithms
    if alpn:
        names = b"".join(bytes([len(p)]) + p.encode("ascii") for p in alpn)
        extensions += _extension(EXT_ALPN, struct.pack("!H", len(names)) + names)
    versions = b"\x03\x04\x03\x03" if tls12 else b"\x03\x04"
    extensions += _extension(EXT_SUPPORTED_VERSIONS, bytes([len(versions)]) + versions)
    extensions += _extension(45, b"\x01\x01")                              # psk_key_exchange_modes
    share = rng.randbytes(32)
    extensions += _extension(51, struct.pack("!HHH", 36, 0x1D, 32) + share)
    if quic_transport_parameters is not None:
        extensions += _extension(EXT_QUIC_TRANSPORT_PARAMETERS, quic_transport_parameters)
    if grease_ech:
        extensions += grease_ech_extension(rng)
    suites = b"\x13\x01\x13\x02\x13\x03"
    if tls12:
        suites += b"\xc0\x2b\xc0\x2f\xc0\x2c\xc0\x30"
    # QUIC forbids a legacy session id (RFC 9001 section 8.4); TLS over TCP sends one
    # for middlebox compatibility (RFC 8446 appendix D.4).
    session_id = b"" if quic_transport_parameters is not None else rng.randbytes(32)
    body = (b"\x03\x03" + rng.randbytes(32) + bytes([len(session_id)]) + session_id
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    handshake = bytes([HS_CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body
    if not record:
        return handshake
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake
