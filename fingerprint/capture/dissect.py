"""Link-layer, IP and transport dissection of captured frames into `Packet` records.

The dissector is total: any byte string gives a `Packet`, a `Problem` (an IP
packet whose header lies about itself) or None (not IP), and never raises.
It decodes only what censorship analysis needs and does so with
`struct.unpack_from` on the capture buffer, so a reader can hand it a record
by offsets without copying the frame first.

Formats (field layouts only, as published): link types from tcpdump.org's
LINKTYPE registry; IPv4 RFC 791; IPv6 RFC 8200 (extension headers §4);
TCP RFC 9293; UDP RFC 768; ICMP RFC 792 (errors quote the IP header plus at
least 8 bytes); ICMPv6 RFC 4443 (errors quote as much as fits).

Fragments: a non-first IPv4/IPv6 fragment gives a `Packet` with `proto` set,
`frag_offset` > 0 and no transport fields (ports 0, empty payload).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from fingerprint.capture.packet import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    Packet,
    RawFrame,
)

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "LINKTYPE_RAW_BSD12",
    "LINKTYPE_RAW_BSD14",
    "SUPPORTED_LINKTYPES",
    "Problem",
    "decode_frame",
    "decode_ip_frame",
    "dissect",
]

LINKTYPE_NULL = 0
"""BSD loopback: 4-byte address family in the writer's byte order."""
LINKTYPE_ETHERNET = 1
"""Ethernet II (EN10MB), with 802.1Q / 802.1ad / QinQ tags."""
LINKTYPE_RAW_BSD12 = 12
"""DLT_RAW as some BSDs number it: the frame is an IP packet."""
LINKTYPE_RAW_BSD14 = 14
"""DLT_RAW as OpenBSD numbers it: the frame is an IP packet."""
LINKTYPE_RAW = 101
"""Raw IP: the frame is an IPv4 or IPv6 packet."""
LINKTYPE_LOOP = 108
"""OpenBSD loopback: like NULL, family in network byte order."""
LINKTYPE_LINUX_SLL = 113
"""Linux "cooked" capture v1 (16-byte header, protocol at offset 14)."""
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
"""Linux "cooked" capture v2 (20-byte header, protocol at offset 0)."""

SUPPORTED_LINKTYPES = frozenset({
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW_BSD12, LINKTYPE_RAW_BSD14, LINKTYPE_RAW,
    LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2,
})

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
# AF_INET6 differs between systems: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30.
_AF_INET = 2
_AF_INET6_VALUES = frozenset({10, 24, 28, 30})

_IPV4_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})
_ICMPV6_ERROR_TYPES = frozenset({1, 2, 3, 4})
# IPv6 extension headers that are skipped to reach the transport header.
_IPV6_HOP_BY_HOP = 0
_IPV6_ROUTING = 43
_IPV6_FRAGMENT = 44
_IPV6_DEST_OPTS = 60
_IPV6_AH = 51
_IPV6_SKIPPABLE = frozenset({_IPV6_HOP_BY_HOP, _IPV6_ROUTING, _IPV6_DEST_OPTS})

_U16 = struct.Struct("!H").unpack_from
_U16_LE = struct.Struct("<H").unpack_from
_U32_LE = struct.Struct("<I").unpack_from
_U32_BE = struct.Struct("!I").unpack_from
_IPV4_HEADER = struct.Struct("!BxHHHBBxxII").unpack_from
_IPV6_HEADER = struct.Struct("!xxxxHBB").unpack_from
_TCP_HEADER = struct.Struct("!HHIIHH").unpack_from
_TCP_PARTIAL = struct.Struct("!HHI").unpack_from
_PORTS = struct.Struct("!HH").unpack_from
_UDP_HEADER = struct.Struct("!HHH").unpack_from
_BYTES2 = struct.Struct("!BB").unpack_from


@dataclass(slots=True, frozen=True)
class Problem:
    """A frame that carries an IP packet whose header cannot be believed; it was skipped."""

    frame: int
    message: str

    def __str__(self) -> str:
        # Frame 0: a fault of the file, not of one packet (e.g. an unsupported interface).
        return f"packet {self.frame}: {self.message}" if self.frame else self.message


# Address text is cached: captures repeat few addresses, and formatting one is
# the dearest step after the header unpacking.  The caches are cleared when
# they grow large so memory stays flat on captures that scan many addresses.
_CACHE_LIMIT = 1 << 16
_v4_text: dict[int, str] = {}
_v6_text: dict[bytes, str] = {}


def _v4_miss(addr: int) -> str:
    if len(_v4_text) >= _CACHE_LIMIT:
        _v4_text.clear()
    text = f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"
    _v4_text[addr] = text
    return text


def _v6_miss(addr: bytes) -> str:
    if len(_v6_text) >= _CACHE_LIMIT:
        _v6_text.clear()
    text = socket.inet_ntop(socket.AF_INET6, addr)
    _v6_text[addr] = text
    return text


def dissect(frame: int, ts: float, linktype: int, data: bytes) -> Packet | None:
    """Decode one captured frame; None when it is not IP or its IP header is malformed."""
    result = decode_frame(frame, ts, linktype, data, 0, len(data))
    return result if result.__class__ is Packet else None  # type: ignore[return-value]


def decode_frame(frame: int, ts: float, linktype: int, buf: bytes, start: int, end: int
                 ) -> Packet | Problem | None:
    """Decode the frame at buf[start:end].

    Returns a `Packet`, a `Problem` naming what is wrong with a malformed IP
    packet, or None for frames that carry no IP (ARP, unknown link types...).
    `end` must not exceed len(buf).
    """
    if linktype == LINKTYPE_ETHERNET and end - start >= 14 and buf[start + 12] == 0x08 \
            and buf[start + 13] == 0x00:
        # Ethernet carrying IPv4, the bulk of most captures: what `_ip_start` would find.
        return _ipv4(frame, ts, buf, start + 14, end, False)
    found = _ip_start(linktype, buf, start, end)
    if found is None:
        return None
    offset, version = found
    if version == 0:
        if offset >= end:
            return Problem(frame, "empty frame on a raw-IP link")
        version = buf[offset] >> 4
        if version != 4 and version != 6:
            return Problem(frame, f"IP version {version} on a raw-IP link is neither 4 nor 6")
    if version == 4:
        return _ipv4(frame, ts, buf, offset, end, False)
    return _ipv6(frame, ts, buf, offset, end, False)


def decode_ip_frame(frame: int, ts: float, linktype: int, buf: bytes, start: int, end: int
                    ) -> RawFrame | None:
    """The IP packet inside the frame at buf[start:end], as bytes, without dissecting it.

    For copying packets (evidence captures): cut to the IP header's length so
    link-layer padding is not copied; None for frames that carry no IP.
    """
    found = _ip_start(linktype, buf, start, end)
    if found is None:
        return None
    packet = bytes(buf[found[0]:end])
    version = packet[0] >> 4 if packet else 0
    if version == 4 and len(packet) >= 4:
        total = _U16(packet, 2)[0]
    elif version == 6 and len(packet) >= 6:
        total = 40 + _U16(packet, 4)[0]
    else:
        return None
    return RawFrame(frame, ts, packet[:total] if 0 < total < len(packet) else packet)


def _ip_start(linktype: int, buf: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Where the IP packet starts in the frame buf[start:end], and the IP version the
    link layer announces (0 for raw-IP links, where only the header itself tells)."""
    if linktype == LINKTYPE_ETHERNET:
        if end - start < 14:
            return None
        ethertype = _U16(buf, start + 12)[0]
        offset = start + 14
    elif linktype == LINKTYPE_RAW or linktype == LINKTYPE_RAW_BSD12 \
            or linktype == LINKTYPE_RAW_BSD14:
        return start, 0
    elif linktype == LINKTYPE_LINUX_SLL:
        if end - start < 16:
            return None
        ethertype = _U16(buf, start + 14)[0]
        offset = start + 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if end - start < 20:
            return None
        ethertype = _U16(buf, start)[0]
        offset = start + 20
    elif linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if end - start < 4:
            return None
        # The writer's byte order is not recorded: a family value is small, so
        # whichever reading gives a small number is the right one.
        family = _U32_LE(buf, start)[0]
        if family > 0xFFFF:
            family = _U32_BE(buf, start)[0]
        if family == _AF_INET:
            return start + 4, 4
        if family in _AF_INET6_VALUES:
            return start + 4, 6
        return None
    elif linktype == LINKTYPE_IPV4:
        return start, 4
    elif linktype == LINKTYPE_IPV6:
        return start, 6
    else:
        return None
    # Ethertype-based links (Ethernet, SLL, SLL2): skip any stack of VLAN tags.
    while ethertype in _VLAN_ETHERTYPES:
        if end - offset < 4:
            return None
        ethertype = _U16(buf, offset + 2)[0]
        offset += 4
    if ethertype == _ETHERTYPE_IPV4:
        return offset, 4
    if ethertype == _ETHERTYPE_IPV6:
        return offset, 6
    return None


def _ipv4(frame: int, ts: float, buf: bytes, start: int, end: int, quoted: bool
          ) -> Packet | Problem:
    captured = end - start
    if captured < 20:
        return Problem(frame, f"IPv4 header truncated ({captured} of 20 bytes captured)")
    vihl, total, ip_id, frag, ttl, proto, src, dst = _IPV4_HEADER(buf, start)
    if vihl >> 4 != 4:
        return Problem(frame, f"IP version {vihl >> 4} where IPv4 was announced")
    ihl = (vihl & 15) << 2
    if ihl < 20:
        return Problem(frame, f"IPv4 header length {ihl} is below 20 bytes")
    if total == 0 and not quoted:
        # Segmentation offload: the NIC fills the length in later, so captures
        # of outgoing packets can show 0; what was captured is the packet.
        total = captured
    if total < ihl:
        return Problem(frame, f"IPv4 total length {total} is below its header length {ihl}")
    if ihl > captured:
        return Problem(frame, f"IPv4 header truncated ({captured} of {ihl} bytes captured)")
    src_text = _v4_text.get(src) or _v4_miss(src)
    dst_text = _v4_text.get(dst) or _v4_miss(dst)
    if proto == PROTO_TCP and not frag & 0x3FFF and start + total <= end \
            and total - ihl >= 20:
        # Fast path for the bulk of any capture: an unfragmented, fully captured TCP
        # segment, built in one constructor call.
        tcp = start + ihl
        sport, dport, seq, ack, offset_flags, window = _TCP_HEADER(buf, tcp)
        data_offset = (offset_flags >> 12) << 2
        if 20 <= data_offset <= total - ihl:
            ip_end = start + total
            return Packet(frame, ts, 4, src_text, dst_text, ttl, ip_id, bool(frag & 0x4000),
                          proto, total, sport, dport, offset_flags & 0xFF, seq, ack, window,
                          buf[tcp + data_offset:ip_end] if tcp + data_offset < ip_end else b"")
    frag_offset = (frag & 0x1FFF) << 3
    packet = Packet(frame, ts, 4, src_text, dst_text, ttl, ip_id, bool(frag & 0x4000), proto,
                    total)
    if frag & 0x2000:
        packet.more_fragments = True
    if frag_offset:
        packet.frag_offset = frag_offset
        packet.truncated = captured < total
        return packet
    ip_end = start + total
    if ip_end > end:
        packet.truncated = True
        ip_end = end
    problem = _transport(packet, buf, start + ihl, ip_end, start + total, quoted)
    return problem or packet


def _ipv6(frame: int, ts: float, buf: bytes, start: int, end: int, quoted: bool
          ) -> Packet | Problem:
    captured = end - start
    if captured < 40:
        return Problem(frame, f"IPv6 header truncated ({captured} of 40 bytes captured)")
    if buf[start] >> 4 != 6:
        return Problem(frame, f"IP version {buf[start] >> 4} where IPv6 was announced")
    payload_len, next_header, hop_limit = _IPV6_HEADER(buf, start)
    if payload_len == 0 and not quoted:
        # Jumbogram or segmentation offload: trust what was captured.
        payload_len = captured - 40
    total = 40 + payload_len
    src_key = buf[start + 8:start + 24]
    dst_key = buf[start + 24:start + 40]
    src_text = _v6_text.get(src_key) or _v6_miss(src_key)
    dst_text = _v6_text.get(dst_key) or _v6_miss(dst_key)
    claimed_end = start + total
    ip_end = claimed_end
    truncated = False
    if ip_end > end:
        truncated = True
        ip_end = end
    offset = start + 40
    frag_offset = 0
    more_fragments = False
    # Walk the extension headers; each one is at least 8 bytes, so this ends.
    while True:
        if next_header in _IPV6_SKIPPABLE or next_header == _IPV6_AH:
            if offset + 8 > claimed_end:
                return Problem(frame, f"IPv6 extension header {next_header} overruns the "
                                      f"payload length {payload_len}")
            if offset + 2 > ip_end:
                break
            nxt, ext_len = _BYTES2(buf, offset)
            length = (ext_len + 2) * 4 if next_header == _IPV6_AH else (ext_len + 1) * 8
            if offset + length > claimed_end:
                return Problem(frame, f"IPv6 extension header {next_header} overruns the "
                                      f"payload length {payload_len}")
            next_header = nxt
            offset += length
        elif next_header == _IPV6_FRAGMENT:
            if offset + 8 > claimed_end:
                return Problem(frame, f"IPv6 fragment header overruns the payload length "
                                      f"{payload_len}")
            if offset + 4 > ip_end:
                break
            nxt = buf[offset]
            field = _U16(buf, offset + 2)[0]
            frag_offset = field & 0xFFF8
            more_fragments = bool(field & 1)
            next_header = nxt
            offset += 8
            if frag_offset:
                break
        else:
            break
    packet = Packet(frame, ts, 6, src_text, dst_text, hop_limit, None, False, next_header, total)
    if more_fragments:
        packet.more_fragments = True
    if truncated:
        packet.truncated = True
    if frag_offset:
        packet.frag_offset = frag_offset
        return packet
    if offset > ip_end:
        # The capture stops inside the extension headers.
        packet.truncated = True
        return packet
    problem = _transport(packet, buf, offset, ip_end, claimed_end, quoted)
    return problem or packet


def _transport(packet: Packet, buf: bytes, offset: int, ip_end: int, claimed_end: int,
               quoted: bool) -> Problem | None:
    """Fill the transport fields of `packet`; buf[offset:ip_end] is what was captured
    of the IP payload, and claimed_end is where the IP header says it ends."""
    proto = packet.proto
    available = ip_end - offset
    claimed = claimed_end - offset
    if proto == PROTO_TCP:
        if available >= 20:
            sport, dport, seq, ack, offset_flags, window = _TCP_HEADER(buf, offset)
            packet.sport = sport
            packet.dport = dport
            packet.seq = seq
            packet.ack = ack
            packet.tcp_flags = offset_flags & 0xFF
            packet.window = window
            data_offset = (offset_flags >> 12) << 2
            if data_offset < 20:
                return Problem(packet.frame, f"TCP data offset {data_offset} is below 20 bytes")
            if data_offset > claimed:
                return Problem(packet.frame, f"TCP header length {data_offset} exceeds the IP "
                                             f"payload ({claimed} bytes)")
            if data_offset <= available:
                if data_offset < available:
                    packet.payload = buf[offset + data_offset:ip_end]
            else:
                packet.truncated = True
            return None
        if claimed < 20:
            if quoted:
                # ICMP quotes may be cut anywhere; keep what is there.
                _partial_tcp(packet, buf, offset, available)
                return None
            return Problem(packet.frame, f"TCP header truncated: the IP payload has {claimed} "
                                         f"bytes")
        _partial_tcp(packet, buf, offset, available)
        packet.truncated = True
        return None
    if proto == PROTO_UDP:
        if available >= 8:
            sport, dport, udp_len = _UDP_HEADER(buf, offset)
            packet.sport = sport
            packet.dport = dport
            # The UDP length may trim the payload (never extend it past the IP length).
            stop = offset + udp_len if 8 <= udp_len < available else ip_end
            if stop > offset + 8:
                packet.payload = buf[offset + 8:stop]
            return None
        if claimed < 8 and not quoted:
            return Problem(packet.frame, f"UDP header truncated: the IP payload has {claimed} "
                                         f"bytes")
        if available >= 4:
            packet.sport, packet.dport = _PORTS(buf, offset)
        packet.truncated = True
        return None
    if proto == PROTO_ICMP or proto == PROTO_ICMPV6:
        if available >= 2:
            icmp_type, code = _BYTES2(buf, offset)
            packet.icmp_type = icmp_type
            packet.icmp_code = code
        elif claimed < 4 and not quoted:
            return Problem(packet.frame, f"ICMP header truncated: the IP payload has {claimed} "
                                         f"bytes")
        else:
            packet.truncated = True
            return None
        if available > 8:
            packet.payload = buf[offset + 8:ip_end]
            errors = _IPV4_ERROR_TYPES if proto == PROTO_ICMP else _ICMPV6_ERROR_TYPES
            if not quoted and icmp_type in errors:
                inner_start = offset + 8
                version = buf[inner_start] >> 4
                inner: Packet | Problem | None = None
                if version == 4:
                    inner = _ipv4(0, packet.ts, buf, inner_start, ip_end, True)
                elif version == 6:
                    inner = _ipv6(0, packet.ts, buf, inner_start, ip_end, True)
                if inner.__class__ is Packet:
                    packet.quoted = inner  # type: ignore[assignment]
        return None
    # Other protocols (GRE, ESP, SCTP...): keep the IP payload as is.
    if available > 0:
        packet.payload = buf[offset:ip_end]
    return None


def _partial_tcp(packet: Packet, buf: bytes, offset: int, available: int) -> None:
    """Ports and sequence number from a TCP header cut short (8 bytes is what ICMP quotes)."""
    if available >= 8:
        packet.sport, packet.dport, packet.seq = _TCP_PARTIAL(buf, offset)
    elif available >= 4:
        packet.sport, packet.dport = _PORTS(buf, offset)
    packet.truncated = True
