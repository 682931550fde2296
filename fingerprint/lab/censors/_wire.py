"""Parsing the packets the censor engine is handed: IPv4, TCP/UDP, the SNI of a
TLS ClientHello and the Host of an HTTP request.

Hand-written with struct instead of scapy dissection: the engine sees every
queued packet and must decide in microseconds.  A ClientHello split over
several segments is parsed as far as the first segment goes (OpenSSL puts
server_name among the first extensions).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TCP = 6
UDP = 17

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

Flow = tuple[str, int, str, int]
"""(source address, source port, destination address, destination port)."""


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    ttl: int
    ip_id: int
    proto: int
    sport: int
    dport: int
    seq: int
    ack: int
    tcp_flags: int
    window: int
    payload: bytes

    @property
    def flow(self) -> Flow:
        return (self.src, self.sport, self.dst, self.dport)


def parse(raw: bytes) -> Packet | None:
    """The IPv4 TCP or UDP packet in `raw`, or None for anything else."""
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    ihl = (raw[0] & 0x0F) * 4
    total = struct.unpack_from("!H", raw, 2)[0]
    ip_id = struct.unpack_from("!H", raw, 4)[0]
    ttl, proto = raw[8], raw[9]
    src = str(ipaddress.IPv4Address(raw[12:16]))
    dst = str(ipaddress.IPv4Address(raw[16:20]))
    body = raw[ihl:min(total, len(raw))]
    if proto == TCP and len(body) >= 20:
        sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", body)
        data_offset = (offset_flags >> 12) * 4
        return Packet(src, dst, ttl, ip_id, proto, sport, dport, seq, ack, offset_flags & 0x3F,
                      window, body[data_offset:])
    if proto == UDP and len(body) >= 8:
        sport, dport = struct.unpack_from("!HH", body)
        return Packet(src, dst, ttl, ip_id, proto, sport, dport, 0, 0, 0, 0, body[8:])
    return None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise IndexError("truncated")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")


def tls_sni(payload: bytes) -> str | None:
    """The server_name of the ClientHello starting `payload`, or None."""
    if len(payload) < 6 or payload[0] != 0x16 or payload[5] != 0x01:
        return None
    reader = _Reader(payload)
    try:
        reader.take(5 + 4)  # record header, handshake header
        reader.take(2 + 32)  # client version, random
        reader.take(reader.number(1))  # session id
        reader.take(reader.number(2))  # cipher suites
        reader.take(reader.number(1))  # compression methods
        end = reader.number(2) + reader.pos
        while reader.pos < end:
            ext_type, ext_len = reader.number(2), reader.number(2)
            ext = _Reader(reader.take(ext_len))
            if ext_type == 0:  # server_name
                ext.take(2)  # list length
                if ext.number(1) == 0:  # host_name
                    return ext.take(ext.number(2)).decode("ascii", "replace").lower()
    except IndexError:
        return None
    return None


_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"DELETE ", b"CONNECT ")


def http_host(payload: bytes) -> str | None:
    """The Host header of the HTTP request starting `payload`, or None."""
    if not payload.startswith(_METHODS):
        return None
    for line in payload.split(b"\r\n")[1:]:
        if not line:
            break
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            return value.strip().split(b":")[0].decode("ascii", "replace").lower()
    return None


def name_matches(name: str, domains: tuple[str, ...]) -> bool:
    """True when `name` equals one of `domains` or is a subdomain of one."""
    name = name.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in domains)
