"""The packet record shared by live probes and capture replay.

Only the fields the analysis needs are decoded: IP header facts that tell an
injected packet from a genuine one (TTL, IP ID, DF), the transport header, the
payload bounded by the IP length (never the link layer's padding), and for
ICMP errors the quoted packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# TCP flag bits
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

# ICMP (RFC 792) and ICMPv6 (RFC 4443) error types: the same meaning has a different
# number in each family (ICMPv6 type 3 is time exceeded, ICMPv4 type 3 unreachable).
ICMP_UNREACHABLE = 3
ICMP_TIME_EXCEEDED = 11
ICMPV6_UNREACHABLE = 1
ICMPV6_TIME_EXCEEDED = 3


class Unreachable(StrEnum):
    """What a destination-unreachable error says could not be reached, or why."""

    NETWORK = "network"
    HOST = "host"
    PROTOCOL = "protocol"
    PORT = "port"
    ADMIN_PROHIBITED = "admin_prohibited"
    """A filter refused it (RFC 1812 codes 9, 10, 13; ICMPv6 codes 1, 5, 6)."""
    OTHER = "other"


# ICMPv4 unreachable codes (RFC 792, RFC 1122, RFC 1812).
_UNREACHABLE_V4 = {0: Unreachable.NETWORK, 1: Unreachable.HOST, 2: Unreachable.PROTOCOL,
                   3: Unreachable.PORT, 6: Unreachable.NETWORK, 7: Unreachable.HOST,
                   8: Unreachable.HOST, 9: Unreachable.ADMIN_PROHIBITED,
                   10: Unreachable.ADMIN_PROHIBITED, 11: Unreachable.NETWORK,
                   12: Unreachable.HOST, 13: Unreachable.ADMIN_PROHIBITED}
# ICMPv6 unreachable codes (RFC 4443 section 3.1).
_UNREACHABLE_V6 = {0: Unreachable.NETWORK, 1: Unreachable.ADMIN_PROHIBITED, 3: Unreachable.HOST,
                   4: Unreachable.PORT, 5: Unreachable.ADMIN_PROHIBITED,
                   6: Unreachable.ADMIN_PROHIBITED}

_FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"),
                 (ECE, "E"), (CWR, "C"))


def flags_text(flags: int) -> str:
    """TCP flags in scapy's letter order, e.g. 0x14 -> 'RA'."""
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit)


@dataclass(slots=True, eq=False)
class Packet:
    """One IP packet, decoded just enough for censorship analysis."""

    frame: int
    """1-based frame number in its capture (0 for a quoted packet inside ICMP)."""
    ts: float
    """Capture timestamp, seconds since the epoch."""
    version: int
    """4 or 6."""
    src: str
    dst: str
    ttl: int
    """IPv4 TTL or IPv6 hop limit."""
    ip_id: int | None
    """IPv4 identification; None for IPv6."""
    df: bool
    """IPv4 don't-fragment bit; False for IPv6."""
    proto: int
    """Transport protocol number (after IPv6 extension headers)."""
    ip_len: int = 0
    """Length of the IP packet as its header says."""
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    seq: int = 0
    ack: int = 0
    window: int = 0
    payload: bytes = b""
    """TCP/UDP payload (or ICMP body), bounded by the IP length and by what was captured."""
    icmp_type: int | None = None
    icmp_code: int | None = None
    quoted: Packet | None = None
    """For ICMP/ICMPv6 errors: the packet it quotes (transport part may be partial)."""
    comment: str | None = None
    """pcapng packet comment, if any."""
    truncated: bool = False
    """Fewer bytes were captured than the IP header announces (snaplen)."""
    capture: str | None = None
    """Name of the capture file it came from, when several are analysed together."""
    frag_offset: int = 0
    """Fragment offset in bytes; a non-zero value means no transport fields were decoded."""
    more_fragments: bool = False
    """The IP "more fragments" flag (IPv4 MF, IPv6 fragment header M)."""

    @property
    def is_tcp(self) -> bool:
        return self.proto == PROTO_TCP

    @property
    def is_udp(self) -> bool:
        return self.proto == PROTO_UDP

    @property
    def is_icmp(self) -> bool:
        return self.proto in (PROTO_ICMP, PROTO_ICMPV6)

    @property
    def is_time_exceeded(self) -> bool:
        """An ICMP or ICMPv6 time-exceeded error (a router on the path named itself)."""
        if self.proto == PROTO_ICMP:
            return self.icmp_type == ICMP_TIME_EXCEEDED
        return self.proto == PROTO_ICMPV6 and self.icmp_type == ICMPV6_TIME_EXCEEDED

    @property
    def is_unreachable(self) -> bool:
        """An ICMP or ICMPv6 destination-unreachable error."""
        if self.proto == PROTO_ICMP:
            return self.icmp_type == ICMP_UNREACHABLE
        return self.proto == PROTO_ICMPV6 and self.icmp_type == ICMPV6_UNREACHABLE

    @property
    def unreachable_kind(self) -> Unreachable | None:
        """The kind of a destination-unreachable error (None for any other packet)."""
        if not self.is_unreachable:
            return None
        codes = _UNREACHABLE_V4 if self.proto == PROTO_ICMP else _UNREACHABLE_V6
        if self.icmp_code is None:
            return Unreachable.OTHER
        return codes.get(self.icmp_code, Unreachable.OTHER)

    @property
    def flags(self) -> str:
        return flags_text(self.tcp_flags)

    def describe(self) -> str:
        """One human-readable line with the fields that reveal an injector."""
        where = f"{self.capture}#{self.frame}" if self.capture else f"#{self.frame}"
        parts = [where, f"{self.src}"]
        if self.sport:
            parts[-1] += f":{self.sport}"
        dst = self.dst + (f":{self.dport}" if self.dport else "")
        parts.append(f"> {dst}")
        ip = f"ttl={self.ttl}"
        if self.ip_id is not None:
            ip += f" id={self.ip_id}"
        ip += " DF" if self.df else " noDF" if self.version == 4 else ""
        parts.append(ip)
        if self.is_tcp:
            parts.append(f"tcp {self.flags or '-'} seq={self.seq} ack={self.ack} win={self.window}")
            if self.payload:
                parts.append(f"len={len(self.payload)}")
        elif self.is_icmp:
            parts.append(f"icmp type={self.icmp_type} code={self.icmp_code}")
        elif self.is_udp:
            parts.append(f"udp len={len(self.payload)}")
        return " ".join(parts)


@dataclass(slots=True)
class RawFrame:
    """One IP packet's bytes with the frame number and time it has in its capture.

    What evidence captures copy: the analysis names packets by (capture, frame),
    and a `RawFrame` carries the same numbering as the `Packet` read from it.
    """

    frame: int
    ts: float
    data: bytes
    """The IP packet, from its IP header on."""
    capture: str | None = None
    """Capture label as the analysis used it (file name when several files are analysed)."""
    comment: str | None = None
    """The packet's pcapng comment in its capture, if any."""
