"""QUIC long-header packets as seen on the wire, sans-IO, parsed defensively.

A censor that blocks QUIC by server name must read the ClientHello inside the
client's Initial packets, and so can we: Initial packets are protected with keys
derived from the client's first Destination Connection ID and a salt published
in the version's RFC, so anyone on the path can remove the protection (RFC 9001
section 5.2; the GFW does so since 2024, Zohaib et al., USENIX Security 2025).
Removing and applying that protection is `protocols.quic_initial`'s; this module
has the wire format around it, and no cryptography:

- long headers (RFC 9000 section 17.2) of QUIC version 1 (RFC 9000) and version 2
  (RFC 9369), several coalesced in one datagram, Version Negotiation (section
  17.2.1) and Retry packets; server datagrams are classified from the header
  alone (Initial / Handshake / Retry / Version Negotiation / short header);
- the frames of a decrypted Initial (PADDING, PING, ACK, CRYPTO,
  CONNECTION_CLOSE), CRYPTO data reassembled across packets and datagrams, and
  the ClientHello in it (server name, ALPN, ECH) through `protocols.tls`;
- varints, CRYPTO frames and a client's transport parameters, for building a
  first flight.

Every parser is total: malformed input gives None (or an object saying what is
missing), never an exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import StrEnum

from fingerprint.protocols import tls

__all__ = [
    "MAX_CID",
    "MIN_CLIENT_INITIAL",
    "QUIC_V1",
    "QUIC_V2",
    "SUPPORTED_VERSIONS",
    "TYPE_BITS",
    "ClientInitials",
    "ConnectionClose",
    "CryptoStream",
    "InitialPacket",
    "LongHeader",
    "PacketType",
    "ServerDatagram",
    "classify_datagram",
    "client_transport_parameters",
    "crypto_frame",
    "encode_varint",
    "long_headers",
    "looks_like_quic_long_header",
    "parse_long_header",
    "read_frames",
]

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
SUPPORTED_VERSIONS = (QUIC_V1, QUIC_V2)
"""The versions whose Initial protection is published (and `quic_initial` removes)."""

MIN_CLIENT_INITIAL = 1200
"""A client must pad datagrams carrying Initials to at least this (RFC 9000 section 14.1)."""
MAX_CID = 20
"""Connection ID length limit of versions 1 and 2 (RFC 9000 section 17.2)."""
_MAX_PACKETS_PER_DATAGRAM = 16
_MAX_FRAMES = 256
_MAX_CRYPTO = 1 << 16
"""CRYPTO bytes kept per connection: a ClientHello fits many times over."""


class PacketType(StrEnum):
    INITIAL = "initial"
    ZERO_RTT = "0rtt"
    HANDSHAKE = "handshake"
    RETRY = "retry"
    VERSION_NEGOTIATION = "version_negotiation"


# The two type bits mean different things in v1 and v2 (RFC 9369 section 3.2).
_TYPES_V1 = (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.RETRY)
_TYPES_V2 = (PacketType.RETRY, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE)
TYPE_BITS = {version: {kind: bits for bits, kind in enumerate(types)}
             for version, types in ((QUIC_V1, _TYPES_V1), (QUIC_V2, _TYPES_V2))}
"""Per version, the type bits of each long-header packet type (for building one)."""

_U32 = struct.Struct("!I").unpack_from


# --------------------------------------------------------------------------- varints

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """RFC 9000 section 16: (value, next position); IndexError when cut short."""
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > len(data):
        raise IndexError("varint cut short")
    value = first & 0x3F
    for i in range(1, size):
        value = (value << 8) | data[pos + i]
    return value, pos + size


def encode_varint(value: int) -> bytes:
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    if value < 0x4000000000000000:
        return (value | 0xC000000000000000).to_bytes(8, "big")
    raise ValueError(f"{value} does not fit a QUIC varint")


# --------------------------------------------------------------------------- headers

@dataclass(slots=True, frozen=True)
class LongHeader:
    """One long-header packet's header as read without removing protection."""

    packet_type: PacketType
    version: int
    dcid: bytes
    scid: bytes
    start: int
    """Offset of the packet in its datagram."""
    end: int
    """Offset just past the packet (the next coalesced packet starts here)."""
    pn_offset: int = 0
    """Offset of the (protected) packet number; 0 for Retry and Version Negotiation."""
    token: bytes = b""
    """Initial: the address-validation token; Retry: the retry token."""
    supported_versions: tuple[int, ...] = ()
    """Version Negotiation: the versions the server offers."""


def looks_like_quic_long_header(data: bytes) -> bool:
    """Long-header form bit and room for version and connection ID lengths."""
    return len(data) >= 7 and data[0] & 0x80 != 0


def parse_long_header(data: bytes, start: int = 0) -> LongHeader | None:
    """The long header at data[start:], or None when it is not one (or is cut short).

    Versions other than 1 and 2 are read as far as the invariants go (RFC 8999):
    only Version Negotiation (version 0) is understood among them.
    """
    try:
        return _parse_long_header(data, start)
    except (IndexError, struct.error):
        return None


def _parse_long_header(data: bytes, start: int) -> LongHeader | None:
    if len(data) - start < 7 or not data[start] & 0x80:
        return None
    first = data[start]
    (version,) = _U32(data, start + 1)
    pos = start + 5
    dcid_len = data[pos]
    if version in SUPPORTED_VERSIONS and dcid_len > MAX_CID:
        return None
    dcid = data[pos + 1:pos + 1 + dcid_len]
    pos += 1 + dcid_len
    scid_len = data[pos]
    if version in SUPPORTED_VERSIONS and scid_len > MAX_CID:
        return None
    scid = data[pos + 1:pos + 1 + scid_len]
    pos += 1 + scid_len
    if pos > len(data) or len(dcid) != dcid_len or len(scid) != scid_len:
        return None
    if version == 0:
        count = (len(data) - pos) // 4
        if count == 0 or (len(data) - pos) % 4:
            return None
        versions = struct.unpack_from(f"!{count}I", data, pos)
        return LongHeader(PacketType.VERSION_NEGOTIATION, 0, dcid, scid, start, len(data),
                          supported_versions=versions)
    if version not in SUPPORTED_VERSIONS:
        return None
    if not first & 0x40:
        # The fixed bit; only a peer that advertised grease_quic_bit may clear it
        # (RFC 9287), which cannot happen in a first flight.
        return None
    kind = (_TYPES_V1 if version == QUIC_V1 else _TYPES_V2)[(first >> 4) & 0x03]
    if kind is PacketType.RETRY:
        if len(data) - pos < 16:
            return None
        return LongHeader(kind, version, dcid, scid, start, len(data),
                          token=data[pos:len(data) - 16])
    token = b""
    if kind is PacketType.INITIAL:
        token_len, pos = _varint(data, pos)
        token = data[pos:pos + token_len]
        if len(token) != token_len:
            return None
        pos += token_len
    length, pos = _varint(data, pos)
    # At least a packet number and a 16-byte sample must follow (RFC 9001 section 5.4.2).
    if length < 20 or pos + length > len(data):
        return None
    return LongHeader(kind, version, dcid, scid, start, pos + length, pn_offset=pos, token=token)


def long_headers(datagram: bytes) -> list[LongHeader]:
    """The long-header packets coalesced in one datagram (RFC 9000 section 12.2), in order.

    Stops at the first short-header packet (it runs to the datagram's end) or at
    bytes that do not parse.
    """
    headers: list[LongHeader] = []
    pos = 0
    while pos < len(datagram) and len(headers) < _MAX_PACKETS_PER_DATAGRAM:
        header = parse_long_header(datagram, pos)
        if header is None:
            break
        headers.append(header)
        if header.packet_type in (PacketType.RETRY, PacketType.VERSION_NEGOTIATION):
            break
        pos = header.end
    return headers


class ServerDatagram(StrEnum):
    """What a datagram from the server is, read from its headers alone."""

    INITIAL = "initial"
    HANDSHAKE = "handshake"
    RETRY = "retry"
    VERSION_NEGOTIATION = "version_negotiation"
    SHORT = "short"
    """A short-header packet: only after a handshake, so a sign the connection works."""
    NOT_QUIC = "not_quic"


def classify_datagram(datagram: bytes) -> ServerDatagram:
    """The kind of the first packet of a datagram; the first Initial or Handshake wins.

    No decryption: the type bits of a long header are not protected.  A short
    header is only recognised by its fixed bit, so it is weak evidence alone.
    """
    if not datagram:
        return ServerDatagram.NOT_QUIC
    if not datagram[0] & 0x80:
        return ServerDatagram.SHORT if datagram[0] & 0x40 and len(datagram) >= 21 \
            else ServerDatagram.NOT_QUIC
    headers = long_headers(datagram)
    if not headers:
        return ServerDatagram.NOT_QUIC
    kinds = {header.packet_type for header in headers}
    for kind, result in ((PacketType.INITIAL, ServerDatagram.INITIAL),
                         (PacketType.HANDSHAKE, ServerDatagram.HANDSHAKE),
                         (PacketType.RETRY, ServerDatagram.RETRY),
                         (PacketType.VERSION_NEGOTIATION, ServerDatagram.VERSION_NEGOTIATION)):
        if kind in kinds:
            return result
    return ServerDatagram.NOT_QUIC  # 0-RTT only: a client's packet


# --------------------------------------------------------------------------- frames

@dataclass(slots=True, frozen=True)
class ConnectionClose:
    error_code: int
    frame_type: int | None
    """The frame that caused it (transport close 0x1c); None for an application close."""
    reason: str


@dataclass(slots=True)
class InitialPacket:
    """A decrypted Initial packet: what its frames say."""

    header: LongHeader
    packet_number: int
    crypto: list[tuple[int, bytes]] = field(default_factory=list)
    """CRYPTO frames as (offset, data)."""
    ping: bool = False
    ack: bool = False
    padding: int = 0
    close: ConnectionClose | None = None
    frame_error: str = ""
    """Why frame parsing stopped early ('' when every frame was read)."""


def read_frames(payload: bytes, packet: InitialPacket) -> None:
    """Read a decrypted Initial's frames into `packet` (`frame_error` says where it stopped)."""
    pos = 0
    frames = 0
    try:
        while pos < len(payload) and frames < _MAX_FRAMES:
            frame_type = payload[pos]
            if frame_type == 0x00:
                start = pos
                while pos < len(payload) and payload[pos] == 0:
                    pos += 1
                packet.padding += pos - start
                continue
            frames += 1
            frame_type, pos = _varint(payload, pos)
            if frame_type == 0x01:
                packet.ping = True
            elif frame_type in (0x02, 0x03):
                packet.ack = True
                _largest, pos = _varint(payload, pos)
                _delay, pos = _varint(payload, pos)
                ranges, pos = _varint(payload, pos)
                _first, pos = _varint(payload, pos)
                if ranges > len(payload):
                    raise IndexError("ACK range count larger than the packet")
                for _ in range(2 * ranges + (3 if frame_type == 0x03 else 0)):
                    _value, pos = _varint(payload, pos)
            elif frame_type == 0x06:
                offset, pos = _varint(payload, pos)
                length, pos = _varint(payload, pos)
                data = payload[pos:pos + length]
                if len(data) != length:
                    raise IndexError("CRYPTO frame longer than the packet")
                packet.crypto.append((offset, data))
                pos += length
            elif frame_type in (0x1C, 0x1D):
                code, pos = _varint(payload, pos)
                caused_by: int | None = None
                if frame_type == 0x1C:
                    caused_by, pos = _varint(payload, pos)
                reason_len, pos = _varint(payload, pos)
                reason = payload[pos:pos + reason_len]
                if len(reason) != reason_len:
                    raise IndexError("CONNECTION_CLOSE reason longer than the packet")
                pos += reason_len
                packet.close = ConnectionClose(code, caused_by,
                                               reason.decode("utf-8", "backslashreplace"))
            else:
                # No other frame may appear in an Initial packet (RFC 9000 section 12.4).
                packet.frame_error = f"frame type {frame_type:#x} not allowed in an Initial"
                return
    except IndexError as exc:
        packet.frame_error = str(exc) or "frame cut short"


# --------------------------------------------------------------------------- CRYPTO stream

class CryptoStream:
    """CRYPTO frame data of one packet-number space, reassembled in offset order."""

    __slots__ = ("_chunks", "_contiguous")

    def __init__(self) -> None:
        self._chunks: dict[int, bytes] = {}
        self._contiguous = b""

    def add(self, offset: int, data: bytes) -> None:
        if not data or offset + len(data) <= len(self._contiguous) or offset >= _MAX_CRYPTO:
            return
        known = self._chunks.get(offset)
        if known is None or len(known) < len(data):
            self._chunks[offset] = data
        self._advance()

    def _advance(self) -> None:
        grown = True
        while grown:
            grown = False
            have = len(self._contiguous)
            for offset in sorted(self._chunks):
                data = self._chunks[offset]
                if offset <= have < offset + len(data):
                    self._contiguous += data[have - offset:]
                    grown = True
                    break
            for offset in [o for o, d in self._chunks.items() if o + len(d) <= len(self._contiguous)]:
                del self._chunks[offset]

    @property
    def data(self) -> bytes:
        """The bytes from offset 0 with no gap."""
        return self._contiguous


@dataclass(slots=True)
class ClientInitials:
    """What a client's Initial packets of one connection (one first DCID) carry."""

    version: int
    dcid: bytes
    scid: bytes
    packets: int = 0
    crypto: CryptoStream = field(default_factory=CryptoStream)
    client_hello: tls.ClientHello | None = None
    complete: bool = False
    """The whole ClientHello message was reassembled (not only a prefix)."""

    def feed(self, packet: InitialPacket) -> None:
        self.packets += 1
        for offset, data in packet.crypto:
            self.crypto.add(offset, data)
        if self.complete:
            return
        message = self.crypto.data
        if len(message) >= 4 and message[0] == tls.HS_CLIENT_HELLO:
            needed = 4 + int.from_bytes(message[1:4], "big")
            self.complete = len(message) >= needed
            hello = tls.parse_client_hello_message(message[:needed])
            if hello is not None:
                self.client_hello = hello


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + encode_varint(offset) + encode_varint(len(data)) + data


def client_transport_parameters(scid: bytes) -> bytes:
    """A client's quic_transport_parameters (RFC 9000 section 18.2): what a server needs
    to accept the first flight.  initial_source_connection_id must equal the SCID of
    the client's Initials, or the server closes the connection (section 7.3)."""
    def varint_param(param_id: int, value: int) -> bytes:
        encoded = encode_varint(value)
        return encode_varint(param_id) + encode_varint(len(encoded)) + encoded
    return (varint_param(0x01, 30_000)            # max_idle_timeout, ms
            + varint_param(0x04, 1 << 20)         # initial_max_data
            + varint_param(0x05, 1 << 18)         # initial_max_stream_data_bidi_local
            + varint_param(0x06, 1 << 18)         # initial_max_stream_data_bidi_remote
            + varint_param(0x07, 1 << 18)         # initial_max_stream_data_uni
            + varint_param(0x08, 100)             # initial_max_streams_bidi
            + varint_param(0x09, 100)             # initial_max_streams_uni
            + encode_varint(0x0F) + encode_varint(len(scid)) + scid)  # initial_source_connection_id
