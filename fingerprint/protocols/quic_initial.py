"""QUIC Initial packet protection, sans-IO: keys, removing it, applying it.

Initial packets are protected with keys anyone on the path can derive: HKDF with
the version's published salt and labels over the client's first Destination
Connection ID (RFC 9001 section 5.2, RFC 9369 section 3.3), then header
protection (AES-ECB mask, RFC 9001 section 5.4.3) and payload protection
(AES-128-GCM, section 5.3).  This module removes it from a client's (or a
server's) Initial and hands the frames to `protocols.quic`, and applies it to
build protected Initials carrying CRYPTO data (a client's ClientHello, or for
test fixtures a server's reply), for the QUIC probe.

Reading is total: a packet that does not authenticate gives None, never an
exception.  Cryptography comes from the `cryptography` package (HMAC,
HKDF-Expand, AES-ECB, AES-GCM); nothing here implements a primitive.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from fingerprint.protocols.quic import (
    MIN_CLIENT_INITIAL,
    QUIC_V1,
    QUIC_V2,
    TYPE_BITS,
    ClientInitials,
    InitialPacket,
    LongHeader,
    PacketType,
    crypto_frame,
    encode_varint,
    long_headers,
    read_frames,
)

__all__ = [
    "InitialKeys",
    "build_initial",
    "build_initial_datagrams",
    "decrypt_initial",
    "initial_keys",
    "read_client_initials",
]

# Initial salts: RFC 9001 section 5.2 (v1) and RFC 9369 section 3.3.1 (v2).
_SALTS = {
    QUIC_V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    QUIC_V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
# HKDF labels for the packet protection keys: RFC 9001 section 5.1, RFC 9369 section 3.3.2.
_LABELS = {
    QUIC_V1: (b"quic key", b"quic iv", b"quic hp"),
    QUIC_V2: (b"quicv2 key", b"quicv2 iv", b"quicv2 hp"),
}


@dataclass(slots=True, frozen=True)
class InitialKeys:
    secret: bytes
    key: bytes
    iv: bytes
    hp: bytes


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label of TLS 1.3 (RFC 8446 section 7.1) with an empty context."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(secret)


def initial_keys(dcid: bytes, version: int = QUIC_V1, *, client: bool = True) -> InitialKeys:
    """The Initial packet protection keys of one side, from the client's first DCID.

    RFC 9001 section 5.2: initial_secret = HKDF-Extract(salt, dcid), then
    "client in" / "server in", then key, iv and hp with the version's labels.
    Raises ValueError for a version without published Initial salt.
    """
    salt = _SALTS.get(version)
    if salt is None:
        raise ValueError(f"no Initial salt for QUIC version {version:#010x}")
    # HKDF-Extract is HMAC(salt, input keying material) (RFC 5869 section 2.2).
    extract = hmac.HMAC(salt, hashes.SHA256())
    extract.update(dcid)
    initial_secret = extract.finalize()
    secret = _expand_label(initial_secret, b"client in" if client else b"server in", 32)
    key_label, iv_label, hp_label = _LABELS[version]
    return InitialKeys(secret, _expand_label(secret, key_label, 16),
                       _expand_label(secret, iv_label, 12), _expand_label(secret, hp_label, 16))


_key_cache: dict[tuple[bytes, int, bool], InitialKeys] = {}


def _cached_keys(dcid: bytes, version: int, client: bool) -> InitialKeys:
    # A flow's retransmitted Initials share one DCID; deriving costs four HKDF calls.
    cache_key = (dcid, version, client)
    keys = _key_cache.get(cache_key)
    if keys is None:
        if len(_key_cache) > 4096:
            _key_cache.clear()
        keys = _key_cache[cache_key] = initial_keys(dcid, version, client=client)
    return keys


def _mask(hp: bytes, sample: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()  # noqa: S305 - RFC 9001 5.4.3
    return encryptor.update(sample) + encryptor.finalize()


def _nonce(iv: bytes, packet_number: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ packet_number).to_bytes(12, "big")


def decrypt_initial(datagram: bytes, header: LongHeader, *, dcid: bytes | None = None,
                    client: bool = True) -> InitialPacket | None:
    """Remove the protection of the Initial packet `header` points at and read its frames.

    `dcid` is the client's first Destination Connection ID (default: the
    header's own, which is right for a client's first Initials); `client` says
    whose keys protect it.  None when the packet is not an Initial of a known
    version or does not authenticate under those keys.
    """
    if header.packet_type is not PacketType.INITIAL or header.version not in _SALTS:
        return None
    keys = _cached_keys(header.dcid if dcid is None else dcid, header.version, client)
    pn_offset = header.pn_offset
    sample = datagram[pn_offset + 4:pn_offset + 20]
    if len(sample) != 16:
        return None
    mask = _mask(keys.hp, sample)
    first = datagram[header.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    truncated_pn = 0
    for i in range(pn_len):
        truncated_pn = (truncated_pn << 8) | (datagram[pn_offset + i] ^ mask[1 + i])
    header_bytes = (bytes([first]) + datagram[header.start + 1:pn_offset]
                    + truncated_pn.to_bytes(pn_len, "big"))
    # First flights: the packet number is small, so the truncated value is the full one
    # (RFC 9000 section 17.1 and appendix A.3 with no packet received yet).
    try:
        payload = AESGCM(keys.key).decrypt(_nonce(keys.iv, truncated_pn),
                                           datagram[pn_offset + pn_len:header.end], header_bytes)
    except (InvalidTag, ValueError):
        return None
    packet = InitialPacket(header, truncated_pn)
    read_frames(payload, packet)
    return packet


def read_client_initials(datagrams: Iterable[bytes]) -> dict[bytes, ClientInitials]:
    """Client datagrams in order -> the Initials of each connection, keyed by first DCID.

    A connection's later Initials keep the client's first DCID until the server's
    first Initial changes it, so the key is the DCID each packet carries; packets
    that do not decrypt are skipped.
    """
    connections: dict[bytes, ClientInitials] = {}
    for datagram in datagrams:
        for header in long_headers(datagram):
            if header.packet_type is not PacketType.INITIAL:
                continue
            packet = decrypt_initial(datagram, header)
            if packet is None:
                continue
            conn = connections.get(header.dcid)
            if conn is None:
                conn = connections[header.dcid] = ClientInitials(header.version, header.dcid,
                                                                 header.scid)
            conn.feed(packet)
    return connections


def build_initial(frames: bytes, *, dcid: bytes, scid: bytes, version: int = QUIC_V1,
                  packet_number: int = 0, pn_length: int = 4, token: bytes = b"",
                  key_dcid: bytes | None = None, client: bool = True,
                  pad_to: int = 0) -> bytes:
    """A protected Initial packet carrying the plaintext `frames`.

    `key_dcid` is the client's first DCID the keys derive from (default `dcid`:
    a client's first flight); `client=False` protects with the server's keys.
    PADDING frames are appended so the packet is at least `pad_to` bytes.
    """
    if version not in _SALTS:
        raise ValueError(f"no Initial salt for QUIC version {version:#010x}")
    if not 1 <= pn_length <= 4:
        raise ValueError("packet number length must be 1 to 4 bytes")
    keys = _cached_keys(dcid if key_dcid is None else key_dcid, version, client)
    first = 0xC0 | (TYPE_BITS[version][PacketType.INITIAL] << 4) | (pn_length - 1)
    prefix = (bytes([first]) + struct.pack("!I", version) + bytes([len(dcid)]) + dcid
              + bytes([len(scid)]) + scid + encode_varint(len(token)) + token)
    # The sample needs 4 bytes after the packet number start: pad short payloads.
    frames = frames + bytes(max(0, 4 - pn_length - len(frames)))
    length = pn_length + len(frames) + 16
    # The length field's own size depends on the length: take the 2-byte form for
    # anything that might need it, as implementations commonly do.
    length_field = _length_field(length, pad_to)
    if pad_to:
        missing = pad_to - (len(prefix) + len(length_field) + length)
        if missing > 0:
            frames += bytes(missing)
            length += missing
            length_field = _length_field(length, pad_to)
    header = prefix + length_field + packet_number.to_bytes(pn_length, "big")
    sealed = AESGCM(keys.key).encrypt(_nonce(keys.iv, packet_number), frames, header)
    pn_offset = len(prefix) + len(length_field)
    packet = bytearray(header + sealed)
    mask = _mask(keys.hp, bytes(packet[pn_offset + 4:pn_offset + 20]))
    packet[0] ^= mask[0] & 0x0F
    for i in range(pn_length):
        packet[pn_offset + i] ^= mask[1 + i]
    return bytes(packet)


def _length_field(length: int, pad_to: int) -> bytes:
    if length < 0x40 and not pad_to:
        return encode_varint(length)
    return (length | 0x4000).to_bytes(2, "big") if length < 0x4000 else encode_varint(length)


def build_initial_datagrams(client_hello: bytes, *, dcid: bytes, scid: bytes,
                            version: int = QUIC_V1, max_crypto: int = 1100,
                            first_packet_number: int = 0) -> list[bytes]:
    """A client's first flight: the ClientHello handshake message (no TLS record
    header) in CRYPTO frames of at most `max_crypto` bytes, one Initial per datagram,
    each padded to 1200 bytes.  Large ClientHellos (post-quantum key shares) span
    several datagrams, as browsers' do.
    """
    datagrams: list[bytes] = []
    for number, offset in enumerate(range(0, max(len(client_hello), 1), max_crypto)):
        chunk = client_hello[offset:offset + max_crypto]
        datagrams.append(build_initial(crypto_frame(offset, chunk), dcid=dcid, scid=scid,
                                       version=version,
                                       packet_number=first_packet_number + number,
                                       pad_to=MIN_CLIENT_INITIAL))
    return datagrams
