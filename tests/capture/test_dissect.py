"""dissect(): link layers, IPv4/IPv6, TCP/UDP/ICMP, quoted packets, malformed input.

Expected values come from scapy's own dissection of the same bytes.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Padding

from fingerprint.capture.dissect import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_BSD12,
    LINKTYPE_RAW_BSD14,
    SUPPORTED_LINKTYPES,
    Problem,
    decode_frame,
    dissect,
)
from fingerprint.capture.packet import ACK, PROTO_ICMP, PROTO_TCP, PROTO_UDP, RST, Packet

CLIENT = "192.0.2.10"
SERVER = "203.0.113.7"
RESOLVER = "198.51.100.53"
CLIENT6 = "2001:db8::10"
SERVER6 = "2001:db8:0:1::7"
# Both MAC addresses are given: with no dst, scapy would ARP for the IP destination.
MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"


def ether() -> Ether:
    return Ether(src=MAC_A, dst=MAC_B)


def ip_packets() -> list[ScapyPacket]:
    """A varied set of IP packets such as probes send and censors answer."""
    hello = bytes.fromhex("160301002a0100002603030000") + b"\x11" * 32
    return [
        IP(src=CLIENT, dst=RESOLVER, id=4321) / UDP(sport=40001, dport=53) /
        DNS(id=7, rd=1, qd=DNSQR(qname="twitter.com")),
        IP(src=RESOLVER, dst=CLIENT, ttl=51, id=0, flags="DF") / UDP(sport=53, dport=40001) /
        DNS(id=7, qr=1, qd=DNSQR(qname="twitter.com"),
            an=DNSRR(rrname="twitter.com", rdata="203.0.113.99")),
        IP(src=CLIENT, dst=SERVER, flags="DF", ttl=64, id=1) /
        TCP(sport=50000, dport=443, flags="S", seq=1000, window=64240,
            options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
        IP(src=SERVER, dst=CLIENT, ttl=52, id=0, flags="DF") /
        TCP(sport=443, dport=50000, flags="SA", seq=77, ack=1001, window=29200),
        IP(src=CLIENT, dst=SERVER, flags="DF", id=2) /
        TCP(sport=50000, dport=443, flags="PA", seq=1001, ack=78, window=502) / hello,
        IP(src=SERVER, dst=CLIENT, ttl=27, id=54321) /
        TCP(sport=443, dport=50000, flags="R", seq=78, window=8192),
        IP(src=SERVER, dst=CLIENT, ttl=27, id=3,
           options=b"\x94\x04\x00\x00\x01\x01\x01\x00") /
        TCP(sport=443, dport=50000, flags="FA", seq=78, ack=1100) / b"Middlebox v 1.0",
        IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=3, seq=4) / b"ping",
        IPv6(src=CLIENT6, dst=SERVER6, hlim=60) / TCP(sport=50001, dport=443, flags="S"),
        IPv6(src=CLIENT6, dst="2001:db8::53") / UDP(sport=40002, dport=53) /
        DNS(id=9, qd=DNSQR(qname="www.facebook.com", qtype="AAAA")),
        IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() /
        IPv6ExtHdrDestOpt() / TCP(sport=50002, dport=80, flags="PA", seq=5) / b"GET / HTTP/1.1",
        IPv6(src=CLIENT6, dst=SERVER6) / ICMPv6EchoRequest(id=1, seq=2, data=b"abc"),
    ]


def expected_transport(packet: ScapyPacket) -> tuple[ScapyPacket | None, bytes]:
    """(transport layer, payload without link padding) as scapy dissects them."""
    layer = None
    for cls in (TCP, UDP, ICMP):
        if cls in packet:
            layer = packet[cls]
            break
    if layer is None:
        for cls in (ICMPv6EchoRequest, ICMPv6TimeExceeded, ICMPv6DestUnreach):
            if cls in packet:
                return packet[cls], bytes(packet[cls])[8:]
        return None, b""
    if isinstance(layer, ICMP):
        payload = bytes(layer)[8:]
    else:
        payload = bytes(layer.payload)
    if Padding in packet:
        payload = payload[:len(payload) - len(packet[Padding].load)]
    return layer, payload


def check_against_scapy(decoded: Packet, parsed: ScapyPacket) -> None:
    ip = parsed[IP] if IP in parsed else parsed[IPv6]
    assert decoded.src == ip.src and decoded.dst == ip.dst
    if isinstance(ip, IP):
        assert decoded.version == 4
        assert decoded.ttl == ip.ttl
        assert decoded.ip_id == ip.id
        assert decoded.df == bool(ip.flags.DF)
        assert decoded.proto == ip.proto
        assert decoded.ip_len == ip.len
    else:
        assert decoded.version == 6
        assert decoded.ttl == ip.hlim
        assert decoded.ip_id is None and decoded.df is False
        assert decoded.ip_len == 40 + ip.plen
    layer, payload = expected_transport(parsed)
    if isinstance(layer, TCP):
        assert decoded.proto == PROTO_TCP
        assert (decoded.sport, decoded.dport) == (layer.sport, layer.dport)
        assert (decoded.seq, decoded.ack, decoded.window) == (layer.seq, layer.ack, layer.window)
        assert decoded.tcp_flags == int(layer.flags)
        assert decoded.flags == str(layer.flags)
    elif isinstance(layer, UDP):
        assert decoded.proto == PROTO_UDP
        assert (decoded.sport, decoded.dport) == (layer.sport, layer.dport)
    elif layer is not None:
        assert (decoded.icmp_type, decoded.icmp_code) == (layer.type, layer.code)
    assert decoded.payload == payload
    assert decoded.truncated is False


def link_frames(packet: ScapyPacket) -> list[tuple[str, int, bytes]]:
    """The same IP packet framed by every supported link layer."""
    raw = bytes(packet)
    v6 = isinstance(packet, IPv6)
    ethertype = 0x86DD if v6 else 0x0800
    family_bsd = 24 if v6 else 2
    family_linux = 10 if v6 else 2
    mac = b"\x02\x00\x00\x00\x00\x01"
    ether_frame = mac + mac + struct.pack("!H", ethertype) + raw
    return [
        ("ethernet", LINKTYPE_ETHERNET, ether_frame),
        ("802.1q", LINKTYPE_ETHERNET, bytes(ether() / Dot1Q(vlan=7) /
                                            packet)),
        ("qinq", LINKTYPE_ETHERNET, bytes(ether() / Dot1AD(vlan=5) /
                                          Dot1Q(vlan=7) / packet)),
        ("raw", LINKTYPE_RAW, raw),
        ("raw-bsd12", LINKTYPE_RAW_BSD12, raw),
        ("raw-bsd14", LINKTYPE_RAW_BSD14, raw),
        ("ipv", LINKTYPE_IPV6 if v6 else LINKTYPE_IPV4, raw),
        ("sll", LINKTYPE_LINUX_SLL,
         struct.pack("!HHH8sH", 0, 1, 6, mac + b"\0\0", ethertype) + raw),
        ("sll2", LINKTYPE_LINUX_SLL2,
         struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 0, 6, mac + b"\0\0") + raw),
        ("null-le", LINKTYPE_NULL, struct.pack("<I", family_bsd) + raw),
        ("null-be", LINKTYPE_NULL, struct.pack(">I", family_linux) + raw),
        ("loop", LINKTYPE_LOOP, struct.pack(">I", family_bsd) + raw),
    ]


CASES = [(index, name) for index in range(len(ip_packets()))
         for name, _, _ in link_frames(IP())]


@pytest.mark.parametrize(("index", "link"), CASES)
def test_fields_match_scapy_on_every_link_type(index: int, link: str) -> None:
    packet = ip_packets()[index]
    raw = bytes(packet)
    parsed = IPv6(raw) if isinstance(packet, IPv6) else IP(raw)
    [(_, linktype, frame)] = [entry for entry in link_frames(packet) if entry[0] == link]
    decoded = dissect(12, 1700000000.5, linktype, frame)
    assert decoded is not None
    assert decoded.frame == 12 and decoded.ts == 1700000000.5
    check_against_scapy(decoded, parsed)


def test_link_types_are_all_covered() -> None:
    covered = {linktype for packet in (IP(), IPv6()) for _, linktype, _ in link_frames(packet)}
    assert covered == SUPPORTED_LINKTYPES


def test_rst_with_ethernet_padding_has_empty_payload() -> None:
    frame = bytes(ether() / IP(src=SERVER, dst=CLIENT, ttl=27) /
                  TCP(sport=443, dport=50000, flags="RA", seq=9, ack=10)) + b"\0" * 6
    assert len(frame) == 60
    parsed = Ether(frame)
    assert Padding in parsed
    decoded = dissect(1, 0.0, LINKTYPE_ETHERNET, frame)
    assert decoded is not None
    check_against_scapy(decoded, parsed)
    assert decoded.payload == b""
    assert decoded.tcp_flags == RST | ACK


def test_udp_payload_is_bounded_by_ip_length_not_padding() -> None:
    frame = bytes(ether() / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=1, dport=53) / b"ab")
    decoded = dissect(1, 0.0, LINKTYPE_ETHERNET, frame + b"PADPAD")
    assert decoded is not None and decoded.payload == b"ab"


def test_icmp_time_exceeded_quoting_tcp_cut_to_8_bytes() -> None:
    segment = bytes(IP(src=CLIENT, dst=SERVER, ttl=1, id=99, flags="DF") /
                    TCP(sport=50000, dport=443, flags="PA", seq=123456789) / (b"\x16" * 200))
    quote = segment[:28]
    raw = bytes(IP(src="198.51.100.1", dst=CLIENT, ttl=254) / ICMP(type=11, code=0) / quote)
    decoded = dissect(3, 2.0, LINKTYPE_RAW, raw)
    assert decoded is not None
    assert (decoded.proto, decoded.icmp_type, decoded.icmp_code) == (PROTO_ICMP, 11, 0)
    assert decoded.payload == quote
    inner = decoded.quoted
    assert inner is not None
    assert inner.frame == 0 and inner.ts == 2.0
    assert (inner.src, inner.dst, inner.ttl, inner.ip_id, inner.df) == (CLIENT, SERVER, 1, 99,
                                                                       True)
    assert (inner.proto, inner.sport, inner.dport, inner.seq) == (PROTO_TCP, 50000, 443, 123456789)
    assert inner.ip_len == len(segment)
    assert inner.truncated is True
    assert inner.payload == b""
    assert inner.quoted is None


def test_icmp_time_exceeded_quoting_a_dns_query() -> None:
    query = IP(src=CLIENT, dst=RESOLVER, ttl=3, id=5) / UDP(sport=40001, dport=53) / \
        DNS(id=77, qd=DNSQR(qname="www.facebook.com"))
    raw = bytes(ether() / IP(src="198.51.100.3", dst=CLIENT) / ICMP(type=11) / query)
    decoded = dissect(1, 0.0, LINKTYPE_ETHERNET, raw)
    assert decoded is not None and decoded.quoted is not None
    inner = decoded.quoted
    parsed = IP(bytes(query))
    check_against_scapy(inner, parsed)
    assert DNS(inner.payload).qd[0].qname == b"www.facebook.com."


def test_icmp_unreachable_quoting_an_icmp_error_does_not_recurse() -> None:
    nested = IP(src="198.51.100.9", dst=CLIENT) / ICMP(type=11) / \
        IP(src=CLIENT, dst=SERVER) / UDP(sport=1, dport=2)
    raw = bytes(IP(src="198.51.100.1", dst=CLIENT) / ICMP(type=3, code=13) / nested)
    decoded = dissect(1, 0.0, LINKTYPE_RAW, raw)
    assert decoded is not None and decoded.quoted is not None
    assert decoded.icmp_code == 13
    assert decoded.quoted.icmp_type == 11
    assert decoded.quoted.quoted is None


@pytest.mark.parametrize("error", [
    ICMPv6DestUnreach(code=1), ICMPv6PacketTooBig(mtu=1280), ICMPv6TimeExceeded(),
    ICMPv6ParamProblem(ptr=6),
])
def test_icmpv6_errors_quote_the_offending_packet(error: ScapyPacket) -> None:
    offending = IPv6(src=CLIENT6, dst=SERVER6, hlim=2) / TCP(sport=50001, dport=443, seq=42,
                                                              flags="S")
    raw = bytes(IPv6(src="2001:db8::1", dst=CLIENT6) / error / offending)
    decoded = dissect(1, 0.0, LINKTYPE_RAW, raw)
    assert decoded is not None
    parsed = IPv6(raw)
    assert (decoded.icmp_type, decoded.icmp_code) == (parsed.payload.type, parsed.payload.code)
    assert decoded.quoted is not None
    check_against_scapy(decoded.quoted, IPv6(bytes(offending)))


def test_ipv4_fragments() -> None:
    whole = IP(src=CLIENT, dst=RESOLVER, id=800) / UDP(sport=5, dport=53) / (b"q" * 100)
    first = IP(bytes(whole))
    first.flags = "MF"
    first.len = None
    first_raw = bytes(first)[:20 + 48]
    first_raw = first_raw[:2] + struct.pack("!H", len(first_raw)) + first_raw[4:]
    decoded = dissect(1, 0.0, LINKTYPE_RAW, first_raw)
    assert decoded is not None
    assert decoded.more_fragments and decoded.frag_offset == 0
    assert (decoded.sport, decoded.dport) == (5, 53)
    later = bytes(IP(src=CLIENT, dst=RESOLVER, id=800, frag=6, proto=17) / (b"q" * 60))
    decoded = dissect(2, 0.0, LINKTYPE_RAW, later)
    assert decoded is not None
    assert (decoded.proto, decoded.frag_offset, decoded.more_fragments) == (PROTO_UDP, 48, False)
    assert (decoded.sport, decoded.dport, decoded.payload) == (0, 0, b"")


def test_ipv6_fragments() -> None:
    first = bytes(IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(m=1, offset=0, id=9) /
                  UDP(sport=7, dport=53) / b"abc")
    decoded = dissect(1, 0.0, LINKTYPE_RAW, first)
    assert decoded is not None
    assert (decoded.proto, decoded.sport, decoded.dport, decoded.payload) == (PROTO_UDP, 7, 53,
                                                                             b"abc")
    assert decoded.more_fragments and decoded.ip_id is None
    later = bytes(IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(nh=6, offset=3, id=9) /
                  (b"z" * 16))
    decoded = dissect(2, 0.0, LINKTYPE_RAW, later)
    assert decoded is not None
    assert (decoded.proto, decoded.frag_offset, decoded.sport, decoded.payload) == (6, 24, 0, b"")


def test_snaplen_cut_packet_is_marked_truncated() -> None:
    raw = bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=1, dport=443, flags="PA") / (b"x" * 500))
    decoded = dissect(1, 0.0, LINKTYPE_RAW, raw[:100])
    assert decoded is not None
    assert decoded.truncated is True
    assert decoded.payload == b"x" * 60
    assert decoded.ip_len == len(raw)
    header_cut = dissect(1, 0.0, LINKTYPE_RAW, raw[:30])
    assert header_cut is not None and header_cut.truncated
    assert (header_cut.sport, header_cut.dport, header_cut.payload) == (1, 443, b"")


def test_segmentation_offload_zero_length_uses_captured_length() -> None:
    raw = bytearray(bytes(IP(src=CLIENT, dst=SERVER) / TCP(flags="A") / (b"d" * 3000)))
    raw[2:4] = b"\0\0"
    decoded = dissect(1, 0.0, LINKTYPE_RAW, bytes(raw))
    assert decoded is not None and len(decoded.payload) == 3000


def test_non_ip_frames_give_none() -> None:
    arp = bytes.fromhex("ffffffffffff020000000001" "0806") + b"\0" * 28
    assert dissect(1, 0.0, LINKTYPE_ETHERNET, arp) is None
    assert dissect(1, 0.0, LINKTYPE_ETHERNET, b"\x01\x02") is None
    assert dissect(1, 0.0, 105, bytes(IP())) is None
    assert dissect(1, 0.0, LINKTYPE_NULL, struct.pack("<I", 7) + bytes(IP())) is None


def _with(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value):]


TCP_RAW = bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=1, dport=2, flags="S"))
UDP_RAW = bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=1, dport=2) / b"x")
V6_RAW = bytes(IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrDestOpt() / TCP())


@pytest.mark.parametrize(("raw", "message"), [
    (_with(TCP_RAW, 0, b"\x43"), "IPv4 header length 12 is below 20 bytes"),
    (_with(TCP_RAW, 2, b"\x00\x10"), "IPv4 total length 16 is below its header length 20"),
    (_with(TCP_RAW, 0, b"\x4f"), "IPv4 total length 40 is below its header length 60"),
    (_with(_with(TCP_RAW, 0, b"\x4f"), 2, b"\x00\x64"),
     "IPv4 header truncated (40 of 60 bytes captured)"),
    (TCP_RAW[:19], "IPv4 header truncated (19 of 20 bytes captured)"),
    (_with(TCP_RAW, 32, b"\x30"), "TCP data offset 12 is below 20 bytes"),
    (_with(TCP_RAW, 32, b"\xf0"), "TCP header length 60 exceeds the IP payload (20 bytes)"),
    (_with(TCP_RAW, 2, b"\x00\x1c")[:28], "TCP header truncated: the IP payload has 8 bytes"),
    (_with(UDP_RAW, 2, b"\x00\x18")[:24], "UDP header truncated: the IP payload has 4 bytes"),
    (_with(V6_RAW, 4, b"\x00\x04"), "IPv6 extension header 60 overruns the payload length 4"),
    (V6_RAW[:39], "IPv6 header truncated (39 of 40 bytes captured)"),
    (b"\x55" + TCP_RAW[1:], "IP version 5 on a raw-IP link is neither 4 nor 6"),
])
def test_malformed_ip_is_a_problem_with_a_precise_message(raw: bytes, message: str) -> None:
    result = decode_frame(1234, 0.0, LINKTYPE_RAW, raw, 0, len(raw))
    assert isinstance(result, Problem)
    assert result.message == message
    assert str(result) == f"packet 1234: {message}"
    assert dissect(1234, 0.0, LINKTYPE_RAW, raw) is None


def test_decode_frame_honours_offsets_into_a_larger_buffer() -> None:
    frame = bytes(ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=9, dport=53) / b"payload")
    buf = b"JUNK" * 5 + frame + b"MORE" * 5
    result = decode_frame(1, 0.0, LINKTYPE_ETHERNET, buf, 20, 20 + len(frame))
    assert isinstance(result, Packet)
    assert result.payload == b"payload"


# -- totality: arbitrary and mutated bytes never raise ----------------------------------

SEEDS = [bytes(ether() / packet) for packet in ip_packets()] + [
    bytes(ether() / IP(src="198.51.100.1", dst=CLIENT) / ICMP(type=11) /
          bytes(IP(src=CLIENT, dst=SERVER) / TCP(flags="PA") / b"hello"))[:14 + 56],
    bytes(ether() / IPv6(src=CLIENT6, dst=SERVER6) / ICMPv6TimeExceeded() /
          IPv6(src=CLIENT6, dst=SERVER6) / UDP()),
]
LINKTYPES = [*sorted(SUPPORTED_LINKTYPES), 105, 0xFFFF]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(frame) - 1))
        frame[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut] if draw(st.booleans()) else frame)


def _is_sane(result: Packet | Problem | None) -> bool:
    if isinstance(result, Problem):
        return bool(result.message)
    if isinstance(result, Packet):
        return result.version in (4, 6) and 0 <= result.sport < 65536 and 0 <= result.ttl < 256
    return result is None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linktype=st.sampled_from(LINKTYPES), data=st.binary(max_size=200))
def test_dissect_is_total_on_random_bytes(linktype: int, data: bytes) -> None:
    result = decode_frame(1, 0.0, linktype, data, 0, len(data))
    assert _is_sane(result)
    # The same bytes inside a bigger buffer decode the same way (no reads past `end`).
    shifted = decode_frame(1, 0.0, linktype, b"\xff" * 3 + data + b"\x45" * 64, 3,
                           3 + len(data))
    assert type(shifted) is type(result)
    if isinstance(result, Packet) and isinstance(shifted, Packet):
        assert (shifted.describe(), shifted.payload, shifted.truncated) == \
            (result.describe(), result.payload, result.truncated)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=mutated_frames())
def test_dissect_is_total_on_mutated_frames(frame: bytes) -> None:
    result = decode_frame(1, 0.0, LINKTYPE_ETHERNET, frame, 0, len(frame))
    assert _is_sane(result)
    if isinstance(result, Packet):
        assert len(result.payload) <= len(frame)

