"""Seeds and mutators for the capture fuzz tests.

Seeds are the IP packets of the fixtures under pcaps/ plus packets built here
(DNS, TLS ClientHello, HTTP, ICMP quoting, QUIC Initials and server replies).  Mutators damage a packet at the
offsets where its headers keep lengths (IPv4 IHL and total length, IPv6
payload length and extension headers, TCP data offset, DNS names and counts,
ClientHello extension and SNI lengths, QUIC long-header lengths) or blindly (bit flips, truncation,
random overwrite).  Containers are written here, byte by byte, so their record
and block length fields can lie too (pcap record headers, pcapng block lengths
and options, gzip cut short).
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from fingerprint.capture.reader import open_ip_frames
from fingerprint.protocols import quic, quic_initial, tls

REPO = Path(__file__).resolve().parents[2]

IpPacket = bytes
Mutator = Callable[[random.Random, IpPacket], IpPacket]


# ---------------------------------------------------------------- seed packets

def fixture_captures(limit_per_file: int = 60) -> list[list[IpPacket]]:
    """The IP packets of each fixture capture, in order (the first `limit_per_file`)."""
    captures: list[list[IpPacket]] = []
    for path in sorted(REPO.glob("pcaps/**/capture.pcap*")):
        with open_ip_frames(path) as reader:
            packets = [frame.data for _, frame in zip(range(limit_per_file), reader.ip_frames(), strict=False)]
        captures.append(packets)
    return captures


def mutated_flow(rng: random.Random, captures: list[list[IpPacket]]) -> list[IpPacket]:
    """A run of consecutive packets from one fixture (whole exchanges and flows, so the
    classification and signature code see them) with a few packets damaged."""
    packets = rng.choice(captures)
    start = rng.randrange(len(packets))
    run = list(packets[start:start + rng.randint(2, 24)])
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(run))
        run[index] = mutate_packet(rng, run[index])
    return run


def _checksum_free_ipv4(proto: int, payload: bytes, src: bytes = b"\xc0\x00\x02\x01",
                        dst: bytes = b"\xcb\x00\x71\x0a", ttl: int = 64) -> bytes:
    # Checksums are not verified by the reader (captures of offloaded traffic
    # carry wrong ones), so they are left zero.
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1234, 0x4000, ttl, proto, 0,
                         src, dst)
    return header + payload


def _ipv6(next_header: int, payload: bytes) -> bytes:
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    return struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64) + src + dst + payload


def _tcp(sport: int, dport: int, flags: int, payload: bytes, seq: int = 1000, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_query(name: bytes = b"\x07twitter\x03com\x00", txid: int = 0x4242) -> bytes:
    return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


def dns_response(txid: int = 0x4242, answers: int = 1) -> bytes:
    question = b"\x07twitter\x03com\x00\x00\x01\x00\x01"
    record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x0a\x22\x22"
    return struct.pack("!HHHHHH", txid, 0x8180, 1, answers, 0, 0) + question + record * answers


def client_hello(sni: bytes = b"twitter.com") -> bytes:
    server_name = struct.pack("!BH", 0, len(sni)) + sni
    sni_ext = struct.pack("!HHH", 0, len(server_name) + 2, len(server_name)) + server_name
    versions = struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"
    alpn_list = b"\x02h2\x08http/1.1"
    alpn = struct.pack("!HHH", 16, len(alpn_list) + 2, len(alpn_list)) + alpn_list
    # Last, so the offsets `client_hello_lengths` damages stay put: an outer ECH extension
    # (GREASE-shaped: suite 1/1, config id 7, 32-byte enc, 144-byte payload).
    ech_body = b"\x00\x00\x01\x00\x01\x07" + struct.pack("!H", 32) + bytes(32) + struct.pack("!H", 144) + bytes(144)
    ech = struct.pack("!HH", 0xFE0D, len(ech_body)) + ech_body
    extensions = sni_ext + versions + alpn + ech
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0x0301, len(handshake)) + handshake


QUIC_DCID = bytes.fromhex("8394c8f03e515708")


def quic_client_initial(sni: str = "twitter.com", version: int = quic.QUIC_V1) -> bytes:
    """A client's first Initial datagram (1200 bytes), deterministic."""
    hello = tls.build_client_hello(sni, random.Random(14), tls12=False, record=False, grease_ech=True,
                                   quic_transport_parameters=quic.client_transport_parameters(b"\x01" * 8))
    return quic_initial.build_initial_datagrams(hello, dcid=QUIC_DCID, scid=b"\x01" * 8, version=version)[0]


def quic_server_initial() -> bytes:
    frames = b"\x02\x00\x00\x00\x00" + quic.crypto_frame(0, b"\x02\x00\x00\x04" + bytes(4))
    return quic_initial.build_initial(frames, dcid=b"\x01" * 8, scid=b"\x02" * 8, key_dcid=QUIC_DCID, client=False)


def quic_packets() -> list[IpPacket]:
    """UDP/443 seeds: client Initials (v1, v2, IPv6), the server's Initial, Version
    Negotiation, a truncated Initial, an unknown version, garbage, a quoting ICMP."""
    initial = quic_client_initial()
    server = (b"\xcb\x00\x71\x0a", b"\xc0\x00\x02\x01")
    unknown = initial[:1] + b"\xff\x00\x00\x1d" + initial[5:]
    negotiation = b"\x80" + bytes(4) + b"\x08\x01\x01\x01\x01\x01\x01\x01\x01\x08" + QUIC_DCID \
        + struct.pack("!II", 1, quic.QUIC_V2)
    time_exceeded = _checksum_free_ipv4(17, _udp(40010, 443, initial), ttl=1)[:28 + 64]
    return [
        _checksum_free_ipv4(17, _udp(40010, 443, initial)),
        _checksum_free_ipv4(17, _udp(443, 40010, quic_server_initial()), src=server[0], dst=server[1]),
        _checksum_free_ipv4(17, _udp(443, 40010, negotiation), src=server[0], dst=server[1]),
        _checksum_free_ipv4(17, _udp(40011, 443, quic_client_initial("x.com", quic.QUIC_V2))),
        _checksum_free_ipv4(17, _udp(40012, 443, initial[:300])),
        _checksum_free_ipv4(17, _udp(40013, 443, unknown)),
        _checksum_free_ipv4(17, _udp(40014, 443, b"\xc3" + bytes(range(256)) * 2)),
        _checksum_free_ipv4(1, b"\x0b\x00\x00\x00\x00\x00\x00\x00" + time_exceeded, src=b"\xcb\x00\x71\x01",
                            dst=b"\xc0\x00\x02\x01"),
        _ipv6(17, _udp(40015, 443, initial)),
    ]


def built_packets() -> list[IpPacket]:
    """Hand-built packets of each kind the analysis parses, IPv4 and IPv6."""
    hello = client_hello()
    request = b"GET / HTTP/1.1\r\nHost: twitter.com\r\n\r\n"
    blockpage = b"HTTP/1.1 302 Found\r\nLocation: http://10.10.34.36/\r\n\r\n<html>blocked</html>"
    quoted = _checksum_free_ipv4(6, _tcp(40000, 443, 0x02, b""))
    packets = [
        _checksum_free_ipv4(17, _udp(40000, 53, dns_query())),
        _checksum_free_ipv4(17, _udp(53, 40000, dns_response()), src=b"\xcb\x00\x71\x0a",
                            dst=b"\xc0\x00\x02\x01"),
        _checksum_free_ipv4(6, _tcp(40001, 443, 0x02, b"")),
        _checksum_free_ipv4(6, _tcp(443, 40001, 0x12, b"", seq=5000, ack=1001), src=b"\xcb\x00\x71\x0a",
                            dst=b"\xc0\x00\x02\x01"),
        _checksum_free_ipv4(6, _tcp(40001, 443, 0x18, hello, seq=1001, ack=5001)),
        _checksum_free_ipv4(6, _tcp(443, 40001, 0x14, b"", seq=5001), src=b"\xcb\x00\x71\x0a",
                            dst=b"\xc0\x00\x02\x01"),
        _checksum_free_ipv4(6, _tcp(40002, 80, 0x18, request, seq=1001, ack=5001)),
        _checksum_free_ipv4(6, _tcp(80, 40002, 0x19, blockpage, seq=5001), src=b"\xcb\x00\x71\x0a",
                            dst=b"\xc0\x00\x02\x01"),
        _checksum_free_ipv4(1, b"\x03\x0d\x00\x00\x00\x00\x00\x00" + quoted, src=b"\xcb\x00\x71\x01",
                            dst=b"\xc0\x00\x02\x01"),
        _ipv6(17, _udp(40000, 53, dns_query())),
        _ipv6(6, _tcp(40003, 443, 0x18, hello, seq=1001, ack=5001)),
        # Hop-by-hop and destination options before UDP.
        _ipv6(0, b"\x3c\x00" + bytes(6) + b"\x11\x00" + bytes(6) + _udp(40000, 53, dns_query())),
        *quic_packets(),
    ]
    return packets


# ---------------------------------------------------------------- packet mutators

def _ip_payload_offset(packet: bytes) -> tuple[int, int] | None:
    """(offset of the transport header, protocol) for a plain IPv4/IPv6 packet."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return (packet[0] & 15) * 4, packet[9]
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return 40, packet[6]
    return None


def _put(packet: bytes, offset: int, value: bytes) -> bytes:
    if offset < 0 or offset >= len(packet):
        return packet
    return packet[:offset] + value + packet[offset + len(value):]


def _app_offset(packet: bytes) -> int | None:
    """Where the TCP or UDP payload starts."""
    found = _ip_payload_offset(packet)
    if found is None:
        return None
    offset, proto = found
    if proto == 17:
        return offset + 8
    if proto == 6 and len(packet) >= offset + 13:
        return offset + (packet[offset + 12] >> 4) * 4
    return None


def bit_flips(rng: random.Random, packet: bytes) -> bytes:
    if not packet:
        return packet
    data = bytearray(packet)
    for _ in range(rng.randint(1, 8)):
        index = rng.randrange(len(data))
        data[index] ^= 1 << rng.randrange(8)
    return bytes(data)


def truncate(rng: random.Random, packet: bytes) -> bytes:
    return packet[:rng.randrange(len(packet) + 1)]


def random_overwrite(rng: random.Random, packet: bytes) -> bytes:
    if not packet:
        return rng.randbytes(rng.randrange(64))
    start = rng.randrange(len(packet))
    return _put(packet, start, rng.randbytes(rng.randint(1, 16)))


def ipv4_ihl(rng: random.Random, packet: bytes) -> bytes:
    if not packet or packet[0] >> 4 != 4:
        return packet
    return bytes([0x40 | rng.choice([0, 1, 2, 3, 4, 6, 15])]) + packet[1:]


def ip_total_length(rng: random.Random, packet: bytes) -> bytes:
    value = rng.choice([0, 1, 19, 20, 21, len(packet) + 1, len(packet) + 1000, 0xFFFF])
    if packet and packet[0] >> 4 == 6:
        return _put(packet, 4, struct.pack("!H", min(max(value - 40, 0), 0xFFFF)))
    return _put(packet, 2, struct.pack("!H", value))


def ipv6_extension_chain(rng: random.Random, packet: bytes) -> bytes:
    """Prepend many extension headers (hop-by-hop, routing, destination options,
    fragment, AH), some pointing at themselves, some with lengths past the end."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        packet = _ipv6(17, _udp(40000, 53, dns_query()))
    chain = b""
    first = rng.choice([0, 43, 44, 51, 60])
    kinds = [first] + [rng.choice([0, 43, 44, 51, 60]) for _ in range(rng.randint(0, 40))]
    for index, kind in enumerate(kinds):
        following = kinds[index + 1] if index + 1 < len(kinds) else packet[6]
        if kind == 44:
            chain += struct.pack("!BBHI", following, 0, rng.choice([0, 1, 8, 0xFFF9]), 7)
        elif kind == 51:
            chain += struct.pack("!BB", following, rng.choice([0, 1, 255])) + bytes(6)
        else:
            chain += struct.pack("!BB", following, rng.choice([0, 0, 1, 255])) + bytes(6)
    payload = chain + packet[40:]
    header = struct.pack("!IHBB", 0x60000000, rng.choice([len(payload), 8, 0xFFFF, 0]) & 0xFFFF, first, 64)
    return header + packet[8:40] + payload


def tcp_data_offset(rng: random.Random, packet: bytes) -> bytes:
    found = _ip_payload_offset(packet)
    if found is None or found[1] != 6:
        return packet
    offset = found[0] + 12
    if offset >= len(packet):
        return packet
    return _put(packet, offset, bytes([rng.randrange(16) << 4 | (packet[offset] & 15)]))


def dns_name_loop(rng: random.Random, packet: bytes) -> bytes:
    """Compression pointers to themselves, forward, past the end, or a long label chain."""
    app = _app_offset(packet)
    if app is None:
        return packet
    message = packet[app:]
    if len(message) < 12:
        message = dns_response()
    choice = rng.randrange(6)
    if choice == 0:
        name = b"\xc0\x0c"  # the question name pointing at itself
    elif choice == 1:
        name = b"\xc0\xff"  # forward / past the end
    elif choice == 2:
        name = b"\x3f" + b"a" * 63  # label with no terminator
    elif choice == 3:
        name = b"\x01a" * 200 + b"\x00"  # longer than 255 bytes
    elif choice == 4:
        name = b"\x80\x01"  # reserved label type
    else:
        name = b"\xc0\x0e\xc0\x0c"
    header = bytearray(message[:12])
    if rng.random() < 0.5:
        header[6:8] = struct.pack("!H", rng.choice([1, 64, 0xFFFF]))  # answer count
    body = name + b"\x00\x01\x00\x01" + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c" * \
        rng.randint(0, 3)
    return packet[:app] + bytes(header) + body


def dns_field(rng: random.Random, packet: bytes) -> bytes:
    """Overwrite DNS header counts or a record length."""
    app = _app_offset(packet)
    if app is None or len(packet) < app + 12:
        return packet
    field = rng.choice([4, 6, 8, 10])
    packet = _put(packet, app + field, struct.pack("!H", rng.choice([0, 2, 0xFFFF])))
    if rng.random() < 0.5 and len(packet) > app + 40:
        # somewhere in the answer: a record's RDLENGTH most likely
        packet = _put(packet, rng.randrange(app + 12, len(packet) - 1), b"\xff\xff")
    return packet


def client_hello_lengths(rng: random.Random, packet: bytes) -> bytes:
    """A ClientHello whose record, handshake, extension or SNI lengths overrun."""
    app = _app_offset(packet)
    if app is None:
        return packet
    hello = bytearray(packet[app:])
    if len(hello) < 50 or hello[0] != 22:
        hello = bytearray(client_hello(rng.choice([b"twitter.com", b"x" * 300, b"\xff\xfe\x00"])))
    # Offsets in the built hello: record length 3, handshake length 6, session id 43,
    # cipher suites 44, extensions total 50, first extension length 54, SNI list 56, name 59.
    target = rng.choice([3, 6, 43, 44, 50, 54, 56, 59, rng.randrange(len(hello) - 1)])
    value = rng.choice([b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\xff", b"\x00\x01"])
    hello[target:target + len(value)] = value
    if rng.random() < 0.3:
        # several records, the later ones lying too
        hello += bytes([22, 3, 1]) + struct.pack("!H", rng.choice([0, 0xFFFF])) + rng.randbytes(8)
    return packet[:app] + bytes(hello)


def quic_lengths(rng: random.Random, packet: bytes) -> bytes:
    """A QUIC long header whose connection ID, token or packet lengths lie, or whose
    version or type bits are changed."""
    app = _app_offset(packet)
    if app is None:
        return packet
    datagram = bytearray(packet[app:])
    if len(datagram) < 40 or not datagram[0] & 0x80:
        datagram = bytearray(quic_client_initial())
    # Offsets in an Initial with 8-byte CIDs: type 0, version 1, DCID length 5, SCID length 14,
    # token length 23, packet length 24-25, packet number 26.
    target = rng.choice([0, 1, 5, 14, 23, 24, 26, rng.randrange(len(datagram) - 1)])
    value = rng.choice([b"\xff", b"\x00", b"\x14", b"\x15", b"\x7f\xff", b"\x40\x00", b"\xbf\xff\xff\xff",
                        b"\x6b\x33\x43\xcf"])
    datagram[target:target + len(value)] = value
    return packet[:app] + bytes(datagram[:rng.choice([len(datagram), rng.randrange(1, len(datagram))])])


PACKET_MUTATORS: tuple[Mutator, ...] = (
    bit_flips, truncate, random_overwrite, ipv4_ihl, ip_total_length, ipv6_extension_chain,
    tcp_data_offset, dns_name_loop, dns_field, client_hello_lengths, quic_lengths,
)


def mutate_packet(rng: random.Random, packet: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        packet = rng.choice(PACKET_MUTATORS)(rng, packet)
    return packet


# ---------------------------------------------------------------- containers

def pcap_bytes(packets: list[bytes], linktype: int = 101, lie: Callable[[int, int], int] | None = None,
               byte_order: str = "<") -> bytes:
    """A classic pcap; `lie(index, length)` may change each record's captured length field."""
    out = bytearray(struct.pack(byte_order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
    for index, packet in enumerate(packets):
        captured = lie(index, len(packet)) if lie else len(packet)
        out += struct.pack(byte_order + "IIII", 1_700_000_000 + index, index * 1000, captured & 0xFFFFFFFF,
                           len(packet)) + packet
    return bytes(out)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) & 3)


def _block(block_type: int, body: bytes, length: int | None = None, trailer: int | None = None) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total if length is None else length) + body + \
        struct.pack("<I", total if trailer is None else trailer)


def pcapng_bytes(packets: list[bytes], linktype: int = 101, comment: str | None = None,
                 tsresol: int | None = None) -> bytes:
    shb_options = _option(1, comment.encode()) + _option(0, b"") if comment is not None else b""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_options)
    idb_options = _option(9, bytes([tsresol])) + _option(0, b"") if tsresol is not None else b""
    out += _block(1, struct.pack("<HHI", linktype, 0, 0) + idb_options)
    for index, packet in enumerate(packets):
        ts = (1_700_000_000 + index) * 1_000_000
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(packet), len(packet))
        body += packet + bytes(-len(packet) & 3)
        out += _block(6, body)
    return out


def damage_container(rng: random.Random, packets: list[bytes]) -> tuple[bytes, str]:
    """A capture of `packets` whose container is damaged one way or another; returns the
    file bytes and a name for the kind of damage."""
    choice = rng.randrange(14)
    if choice == 0:
        cut = pcapng_bytes(packets)
        return cut[:rng.randrange(len(cut))], "pcapng truncated"
    if choice == 1:
        cut = pcap_bytes(packets)
        return cut[:rng.randrange(len(cut))], "pcap truncated"
    if choice == 2:
        victim = rng.randrange(max(len(packets), 1))
        lies = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 300_000, 65536 * 4]

        def lie(index: int, length: int) -> int:
            return rng.choice([*lies, length + 1, length + 7]) if index == victim else length

        return pcap_bytes(packets, lie=lie, byte_order=rng.choice("<>")), "pcap record length lies"
    if choice == 3:
        data = bytearray(pcapng_bytes(packets))
        # Any block's length field (every 4-byte word may be one after earlier damage).
        offsets = _block_offsets(bytes(data))
        at = rng.choice(offsets) + rng.choice([4, 4, 4, 0])
        data[at:at + 4] = struct.pack("<I", rng.choice([0, 4, 12, 13, 28, 0xFFFFFFFC, 1 << 24, 33]))
        return bytes(data), "pcapng block length lies"
    if choice == 4:
        data = bytearray(pcapng_bytes(packets))
        offsets = _block_offsets(bytes(data))
        at = rng.choice(offsets)
        end = at + struct.unpack_from("<I", data, at + 4)[0]
        data[end - 4:end] = struct.pack("<I", rng.choice([0, 12, 0xFFFFFFFF]))
        return bytes(data), "pcapng block trailer lies"
    if choice == 5:
        # EPB captured length beyond its block, interface index beyond the section.
        data = bytearray(pcapng_bytes(packets))
        offsets = [o for o in _block_offsets(bytes(data)) if struct.unpack_from("<I", data, o)[0] == 6]
        if offsets:
            at = rng.choice(offsets)
            field = rng.choice([8, 20, 24])
            data[at + field:at + field + 4] = struct.pack("<I", rng.choice([1, 0xFFFF, 0xFFFFFFFF, 300_000]))
        return bytes(data), "pcapng packet block fields lie"
    if choice == 6:
        comment = rng.choice([
            'fingerprint-probe {"no_resolver": 5}',
            'fingerprint-probe {"control_answers": {"a": 1}, "address_platform": [1]}',
            'fingerprint-probe {"probe_asn": "' + "9" * 5000 + '"}',
            'fingerprint-probe {"probe_asn": "\u00b2", "probe_cc": 7}',
            "fingerprint-probe " + "[" * 60_000,
            "fingerprint-probe " + rng.randbytes(40).decode("latin-1"),
            "fingerprint-probe null",
        ])
        return pcapng_bytes(packets, comment=comment), "pcapng section comment (hints) malformed"
    if choice == 7:
        # Options with lengths past their block; an if_tsresol of 0 or 2^-127.
        data = pcapng_bytes(packets, tsresol=rng.choice([0, 0x7F, 0xFF, 0x80]))
        offsets = _block_offsets(data)
        shb_end = struct.unpack_from("<I", data, 4)[0]
        idb_options = shb_end + 16
        buf = bytearray(data)
        if rng.random() < 0.5 and len(offsets) > 1:
            buf[idb_options + 2:idb_options + 4] = struct.pack("<H", rng.choice([0xFFFF, 3, 9]))
        return bytes(buf), "pcapng options lie"
    if choice == 8:
        whole = gzip.compress(pcapng_bytes(packets))
        return whole[:rng.randrange(2, len(whole))], "gzip truncated"
    if choice == 9:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        body = compressor.compress(pcap_bytes(packets)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return body + rng.randbytes(rng.randrange(8)), "gzip without trailer, garbage after"
    if choice == 10:
        return rng.randbytes(rng.randrange(0, 200)), "random bytes"
    if choice == 11:
        head = rng.choice([b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a", b"\x1f\x8b", b"\x4d\x3c\xb2\xa1"])
        return head + rng.randbytes(rng.randrange(0, 120)), "magic then random bytes"
    if choice == 12:
        data = bytearray(rng.choice([pcap_bytes, pcapng_bytes])(packets))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), "container bit flips"
    # Link types with headers of their own, over raw IP bytes.
    linktype = rng.choice([0, 1, 12, 14, 108, 113, 228, 229, 276, 147])
    framed = [_link_header(rng, linktype) + packet for packet in packets]
    return rng.choice([pcap_bytes, pcapng_bytes])(framed, linktype), "other link types"


def _link_header(rng: random.Random, linktype: int) -> bytes:
    if linktype == 1:
        tags = b"\x81\x00\x00\x01" * rng.randint(0, 3)
        return bytes(12) + tags + rng.choice([b"\x08\x00", b"\x86\xdd", b"\x81\x00"])
    if linktype in (0, 108):
        return struct.pack(rng.choice(["<I", ">I"]), rng.choice([2, 10, 24, 30, 99]))
    if linktype == 113:
        return bytes(14) + rng.choice([b"\x08\x00", b"\x86\xdd"])
    if linktype == 276:
        return rng.choice([b"\x08\x00", b"\x86\xdd"]) + bytes(18)
    return b""


def _block_offsets(data: bytes) -> list[int]:
    offsets: list[int] = []
    pos = 0
    while pos + 12 <= len(data):
        offsets.append(pos)
        length = struct.unpack_from("<I", data, pos + 4)[0]
        if length < 12:
            break
        pos += length
    return offsets
