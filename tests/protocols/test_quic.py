"""QUIC Initial keys, protection, frames and CRYPTO reassembly against RFC 9001 / RFC 9369
appendix A, round trips through the builder, and malformed input."""

from __future__ import annotations

import random
import struct

import pytest
import quic_vectors as v
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint.protocols import quic, quic_initial, tls


@pytest.mark.parametrize(("version", "client", "secret", "key", "iv", "hp"), [
    (quic.QUIC_V1, True, v.V1_CLIENT_SECRET, v.V1_CLIENT_KEY, v.V1_CLIENT_IV, v.V1_CLIENT_HP),
    (quic.QUIC_V1, False, v.V1_SERVER_SECRET, v.V1_SERVER_KEY, v.V1_SERVER_IV, v.V1_SERVER_HP),
    (quic.QUIC_V2, True, v.V2_CLIENT_SECRET, v.V2_CLIENT_KEY, v.V2_CLIENT_IV, v.V2_CLIENT_HP),
    (quic.QUIC_V2, False, v.V2_SERVER_SECRET, v.V2_SERVER_KEY, v.V2_SERVER_IV, v.V2_SERVER_HP),
])
def test_initial_keys_match_the_rfc_vectors(version: int, client: bool, secret: bytes, key: bytes,
                                            iv: bytes, hp: bytes) -> None:
    keys = quic_initial.initial_keys(v.DCID, version, client=client)
    assert (keys.secret, keys.key, keys.iv, keys.hp) == (secret, key, iv, hp)


def test_unknown_version_has_no_keys() -> None:
    with pytest.raises(ValueError, match="no Initial salt"):
        quic_initial.initial_keys(v.DCID, 0xFF00001D)


@pytest.mark.parametrize(("version", "packet"), [(quic.QUIC_V1, v.V1_CLIENT_PACKET),
                                                 (quic.QUIC_V2, v.V2_CLIENT_PACKET)])
def test_client_initial_vector_decrypts_to_example_com(version: int, packet: bytes) -> None:
    header = quic.parse_long_header(packet)
    assert header is not None
    assert (header.packet_type, header.version, header.dcid, header.scid) == \
        (quic.PacketType.INITIAL, version, v.DCID, b"")
    assert header.end == len(packet) == 1200
    initial = quic_initial.decrypt_initial(packet, header)
    assert initial is not None
    assert initial.packet_number == v.CLIENT_PACKET_NUMBER
    assert initial.padding == 917 and not initial.frame_error
    assert [(offset, len(data)) for offset, data in initial.crypto] == [(0, 241)]
    hello = quic_initial.read_client_initials([packet])[v.DCID]
    assert hello.complete and hello.client_hello is not None
    assert hello.client_hello.sni == "example.com"
    assert hello.client_hello.alpn == ("alpn",)
    assert not hello.client_hello.ech_present


@pytest.mark.parametrize(("version", "packet"), [(quic.QUIC_V1, v.V1_CLIENT_PACKET),
                                                 (quic.QUIC_V2, v.V2_CLIENT_PACKET)])
def test_builder_reproduces_the_client_vector(version: int, packet: bytes) -> None:
    built = quic_initial.build_initial(v.CLIENT_FRAMES, dcid=v.DCID, scid=b"", version=version,
                                       packet_number=v.CLIENT_PACKET_NUMBER, pn_length=4)
    assert built == packet


@pytest.mark.parametrize(("version", "packet"), [(quic.QUIC_V1, v.V1_SERVER_PACKET),
                                                 (quic.QUIC_V2, v.V2_SERVER_PACKET)])
def test_server_initial_vector(version: int, packet: bytes) -> None:
    assert quic.classify_datagram(packet) is quic.ServerDatagram.INITIAL
    header = quic.parse_long_header(packet)
    assert header is not None and header.scid == v.SERVER_SCID
    # The server's keys derive from the client's first DCID, not from the header.
    assert quic_initial.decrypt_initial(packet, header) is None
    initial = quic_initial.decrypt_initial(packet, header, dcid=v.DCID, client=False)
    assert initial is not None and initial.ack and initial.packet_number == 1
    assert initial.crypto[0][1][0] == tls.HS_SERVER_HELLO
    built = quic_initial.build_initial(v.SERVER_FRAMES, dcid=b"", scid=v.SERVER_SCID, version=version,
                                       packet_number=1, pn_length=2, key_dcid=v.DCID, client=False)
    assert built == packet


@pytest.mark.parametrize("version", [quic.QUIC_V1, quic.QUIC_V2])
def test_large_client_hello_spans_datagrams_and_reassembles_out_of_order(version: int) -> None:
    rng = random.Random(5)
    # A post-quantum-sized ClientHello: about 1800 bytes of transport parameters.
    hello = tls.build_client_hello("blocked.example", rng, tls12=False, record=False,
                                   quic_transport_parameters=rng.randbytes(1800), grease_ech=True)
    dcid = rng.randbytes(8)
    datagrams = quic_initial.build_initial_datagrams(hello, dcid=dcid, scid=rng.randbytes(8), version=version)
    assert len(datagrams) == 3 and all(len(d) == quic.MIN_CLIENT_INITIAL for d in datagrams)
    only_first = quic_initial.read_client_initials(datagrams[:1])[dcid]
    assert not only_first.complete
    conn = quic_initial.read_client_initials(reversed(datagrams))[dcid]
    assert conn.complete and conn.packets == 3
    assert conn.client_hello is not None
    assert conn.client_hello.sni == "blocked.example" and conn.client_hello.ech_present


def test_coalesced_packets_in_one_datagram() -> None:
    rng = random.Random(6)
    dcid = rng.randbytes(8)
    hello = tls.build_client_hello("a.example", rng, tls12=False, record=False,
                                   quic_transport_parameters=b"")
    first = quic_initial.build_initial(quic.crypto_frame(0, hello[:100]), dcid=dcid, scid=b"", packet_number=0)
    second = quic_initial.build_initial(quic.crypto_frame(100, hello[100:]) + b"\x01", dcid=dcid, scid=b"",
                                        packet_number=1)
    datagram = first + second + rng.randbytes(40)  # a trailing short-header-looking tail
    headers = quic.long_headers(datagram)
    assert [h.end for h in headers][:2] == [len(first), len(first) + len(second)]
    conn = quic_initial.read_client_initials([datagram])[dcid]
    assert conn.packets == 2 and conn.complete
    assert conn.client_hello is not None and conn.client_hello.sni == "a.example"


def test_frames_ping_ack_and_connection_close() -> None:
    dcid = bytes(8)
    frames = (b"\x01" + b"\x02" + quic.encode_varint(5) + b"\x00\x01\x00" + b"\x01\x00"  # 1 extra range
              + b"\x00\x00\x00"
              + b"\x1c" + quic.encode_varint(0x0A) + b"\x06" + b"\x04oops")
    packet = quic_initial.build_initial(frames, dcid=dcid, scid=b"")
    header = quic.parse_long_header(packet)
    assert header is not None
    initial = quic_initial.decrypt_initial(packet, header)
    assert initial is not None and initial.ping and initial.ack
    assert initial.close == quic.ConnectionClose(0x0A, 0x06, "oops")
    assert initial.padding == 3 and not initial.frame_error


def test_forbidden_frame_stops_parsing_with_a_reason() -> None:
    packet = quic_initial.build_initial(b"\x08\x00\x00", dcid=bytes(8), scid=b"")  # STREAM frame
    header = quic.parse_long_header(packet)
    assert header is not None
    initial = quic_initial.decrypt_initial(packet, header)
    assert initial is not None and "not allowed" in initial.frame_error


def test_cut_short_crypto_frame_is_reported() -> None:
    packet = quic_initial.build_initial(b"\x06\x00\x40\x50abc", dcid=bytes(8), scid=b"")
    header = quic.parse_long_header(packet)
    assert header is not None
    initial = quic_initial.decrypt_initial(packet, header)
    assert initial is not None and initial.crypto == [] and initial.frame_error


def test_server_datagram_kinds_without_keys() -> None:
    rng = random.Random(7)
    # v1 type bits 2: Handshake (no token field); its payload is opaque without the TLS keys.
    handshake = (b"\xe1" + struct.pack("!I", 1) + b"\x00\x08" + rng.randbytes(8)
                 + quic.encode_varint(60) + rng.randbytes(60))
    assert quic.classify_datagram(handshake) is quic.ServerDatagram.HANDSHAKE
    retry = b"\xf0" + struct.pack("!I", 1) + b"\x00\x08" + rng.randbytes(8) + b"token" + bytes(16)
    assert quic.classify_datagram(retry) is quic.ServerDatagram.RETRY
    header = quic.parse_long_header(retry)
    assert header is not None and header.token == b"token"
    negotiation = b"\x80" + bytes(4) + b"\x08" + rng.randbytes(8) + b"\x00" + struct.pack("!II", 1, quic.QUIC_V2)
    assert quic.classify_datagram(negotiation) is quic.ServerDatagram.VERSION_NEGOTIATION
    header = quic.parse_long_header(negotiation)
    assert header is not None and header.supported_versions == (1, quic.QUIC_V2)
    assert quic.classify_datagram(b"\x40" + rng.randbytes(30)) is quic.ServerDatagram.SHORT
    assert quic.classify_datagram(b"") is quic.ServerDatagram.NOT_QUIC
    assert quic.classify_datagram(b"GET / HTTP/1.1\r\n") is quic.ServerDatagram.NOT_QUIC


@pytest.mark.parametrize("damage", ["truncated", "length_too_long", "unknown_version", "dcid_too_long",
                                    "flipped_payload", "no_fixed_bit", "empty"])
def test_malformed_client_initials_are_not_quic(damage: str) -> None:
    packet = bytearray(v.V1_CLIENT_PACKET)
    if damage == "truncated":
        packet = packet[:600]
    elif damage == "length_too_long":
        packet[16:18] = (0x4000 | 1300).to_bytes(2, "big")
    elif damage == "unknown_version":
        packet[1:5] = b"\xff\x00\x00\x1d"
    elif damage == "dcid_too_long":
        packet[5] = 21
    elif damage == "flipped_payload":
        packet[500] ^= 1
    elif damage == "no_fixed_bit":
        packet[0] &= 0xBF
    else:
        packet = bytearray()
    data = bytes(packet)
    header = quic.parse_long_header(data)
    if header is not None:
        assert quic_initial.decrypt_initial(data, header) is None
    assert quic_initial.read_client_initials([data]) == {}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1400))
def test_garbage_never_raises(data: bytes) -> None:
    quic.long_headers(data)
    quic.classify_datagram(data)
    quic_initial.read_client_initials([data])


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=1199), st.integers(min_value=0, max_value=255))
def test_mutated_vector_never_raises(position: int, value: int) -> None:
    packet = bytearray(v.V1_CLIENT_PACKET)
    packet[position] = value
    connections = quic_initial.read_client_initials([bytes(packet)])
    for conn in connections.values():
        # A mutation that still authenticates can only be in the unprotected header.
        assert conn.client_hello is None or conn.client_hello.sni == "example.com"


def test_crypto_stream_overlaps_and_gaps() -> None:
    stream = quic.CryptoStream()
    stream.add(5, b"fghij")
    assert stream.data == b""
    stream.add(0, b"abcdefg")
    assert stream.data == b"abcdefghij"
    stream.add(3, b"de")  # already have it
    stream.add(10, b"k")
    assert stream.data == b"abcdefghijk"


def test_varint_round_trip() -> None:
    for value in (0, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**62 - 1):
        encoded = quic.encode_varint(value)
        assert quic._varint(encoded, 0) == (value, len(encoded))
    with pytest.raises(ValueError):
        quic.encode_varint(2**62)
