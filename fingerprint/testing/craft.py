"""Crafting realistic captures: the packets a probe run would record, built with scapy.

Fixtures and tests describe a network's behaviour packet by packet (a DNS
query answered by a forged and then a genuine response, a TLS handshake whose
ClientHello draws three RST+ACKs, TTL-limited repeats answered by ICMP time
exceeded) and get a capture that goes through the same pipeline as a live run:

    cap = Capture(seed=7, hints={"probe_cc": "CN"})
    q = cap.dns("203.0.113.53", "twitter.com", at=0.0)
    q.respond(["8.7.198.45"], delay_ms=9, ttl=90, ip_id=0, df=False, flags=0x8580)
    q.respond(["104.244.42.1"], delay_ms=60, ttl=52)
    flow = cap.tcp("203.0.113.10", 443, at=1.0)
    flow.handshake()
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=15, ttl=101, ip_id=0, seq_offset=1460)
    cap.write("pcaps/cn/example/capture.pcapng.gz")

Everything random (ports, sequence numbers, IP IDs, TLS randoms) comes from
one seeded generator and every time is explicit, so a script rebuilds
byte-identical files.  Nothing is sent: this only writes files.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6TimeExceeded, IPv6
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from fingerprint.analysis.observe import CaptureHints
from fingerprint.capture.writer import CaptureWriter
from fingerprint.protocols import quic as quic_proto
from fingerprint.protocols import quic_initial
from fingerprint.protocols import tls as tls_proto
from fingerprint.protocols.dns import TYPE_A, TYPE_AAAA, TYPE_CNAME, build_query

__all__ = ["Capture", "DnsQuery", "TcpFlow", "client_hello", "http_request", "http_response",
           "server_flight"]

START = 1_625_097_600.0
"""2021-07-01 00:00:00 UTC: the default capture start (any fixed value keeps files stable)."""

MSS = 1400
TLS12 = 0x0303


def _is_v6(address: str) -> bool:
    return ipaddress.ip_address(address).version == 6


# --------------------------------------------------------------------------- payloads

def client_hello(sni: str | None, rng: random.Random, *, tls13: bool = True) -> bytes:
    """A TLS ClientHello record offering TLS 1.2 (and 1.3) with `sni` in server_name."""
    extensions = b""
    if sni is not None:
        name = sni.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions += struct.pack("!HHH", 0, len(entry) + 2, len(entry)) + entry
    extensions += struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"          # supported_groups x25519
    extensions += struct.pack("!HH", 13, 4) + b"\x00\x02\x04\x03"      # signature_algorithms
    alpn = b"\x02h2\x08http/1.1"
    extensions += struct.pack("!HHH", 16, len(alpn) + 2, len(alpn)) + alpn
    if tls13:
        extensions += struct.pack("!HH", 43, 5) + b"\x04\x03\x04\x03\x03"
        share = bytes(rng.getrandbits(8) for _ in range(32))
        extensions += struct.pack("!HHHHH", 51, 38, 36, 0x1D, 32) + share
    suites = b"\x13\x01\x13\x02\xc0\x2b\xc0\x2f\xc0\x2c\xc0\x30"
    body = (struct.pack("!H", TLS12) + bytes(rng.getrandbits(8) for _ in range(32))
            + b"\x20" + bytes(rng.getrandbits(8) for _ in range(32))
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def esni_client_hello(sni: str | None, rng: random.Random) -> bytes:
    """A TLS 1.3 ClientHello carrying encrypted_server_name (0xffce, draft-ietf-tls-esni-02..06:
    cipher suite, key share, record digest, encrypted SNI; random contents, as a middlebox
    cannot read them anyway) and no clear server_name unless `sni` is given."""
    record = client_hello(sni, rng)
    key = rng.randbytes(32)
    body = (struct.pack("!H", 0x1301) + struct.pack("!HH", 0x1D, 32) + key
            + struct.pack("!H", 32) + rng.randbytes(32) + struct.pack("!H", 276) + rng.randbytes(276))
    extension = struct.pack("!HH", 0xFFCE, len(body)) + body
    handshake = bytearray(record[5:])
    # Append the extension: extensions are last, so only the three lengths grow.
    handshake += extension
    body_len = int.from_bytes(handshake[1:4], "big") + len(extension)
    handshake[1:4] = body_len.to_bytes(3, "big")
    session_len = handshake[4 + 34]
    pos = 4 + 35 + session_len
    suites_len = int.from_bytes(handshake[pos:pos + 2], "big")
    pos += 2 + suites_len
    pos += 1 + handshake[pos]
    ext_len = int.from_bytes(handshake[pos:pos + 2], "big") + len(extension)
    handshake[pos:pos + 2] = ext_len.to_bytes(2, "big")
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + bytes(handshake)


def server_flight(rng: random.Random, chain: Sequence[bytes] = ()) -> bytes:
    """TLS 1.2 ServerHello, Certificate (when `chain` is given) and ServerHelloDone."""
    hello = (struct.pack("!H", TLS12) + bytes(rng.getrandbits(8) for _ in range(32)) + b"\x00"
             + b"\xc0\x2f" + b"\x00" + b"\x00\x00")
    messages = b"\x02" + len(hello).to_bytes(3, "big") + hello
    if chain:
        certs = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
        body = len(certs).to_bytes(3, "big") + certs
        messages += b"\x0b" + len(body).to_bytes(3, "big") + body
    messages += b"\x0e\x00\x00\x00"
    return b"\x16\x03\x03" + struct.pack("!H", len(messages)) + messages


def app_data(size: int) -> bytes:
    """One TLS application-data record of `size` payload bytes (zeros: compress well)."""
    return b"\x17\x03\x03" + struct.pack("!H", size) + b"\x00" * size


def http_request(host: str, path: str = "/") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fingerprint\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode("ascii")


def http_response(status: int, reason: str, headers: Sequence[tuple[str, str]] = (),
                  body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _wire_name(name: str) -> bytes:
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def dns_response(query: bytes, answers: Sequence[str], *, flags: int, answer_ttl: int,
                 compress: bool = True, cnames: Sequence[str] = ()) -> bytes:
    """A response to `query` (same id and question) with A/AAAA `answers`.

    `cnames` come first, as a chain from the question's name (each the next record's
    owner); the addresses then belong to the last of them.  The question's name as an
    owner is a pointer to the question (`compress`, as most resolvers write it) or the
    name spelt out again (as scapy's DNSRR writes it); later owners are spelt out.
    """
    txid = query[:2]
    question = query[12:]
    owner = b"\xc0\x0c" if compress else question[:-4]
    records = b""
    for target in cnames:
        rdata = _wire_name(target)
        records += owner + struct.pack("!HHIH", TYPE_CNAME, 1, answer_ttl, len(rdata)) + rdata
        owner = rdata
    for address in answers:
        packed = ipaddress.ip_address(address).packed
        rtype = TYPE_AAAA if len(packed) == 16 else TYPE_A
        records += owner + struct.pack("!HHIH", rtype, 1, answer_ttl, len(packed)) + packed
    count = len(cnames) + len(answers)
    return txid + struct.pack("!HHHHH", flags, 1, count, 0, 0) + question + records


# --------------------------------------------------------------------------- capture

@dataclass(order=True)
class _Record:
    ts: float
    order: int
    data: bytes = field(compare=False)
    comment: str | None = field(compare=False, default=None)


class Capture:
    """Packets of one crafted probe run, written in time order."""

    def __init__(self, *, seed: int = 1, start: float = START, client: str = "198.51.100.10",
                 client6: str = "2001:db8:100::10", client_ttl: int = 64,
                 hints: dict[str, Any] | None = None) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.client = client
        self.client6 = client6
        self.client_ttl = client_ttl
        self.hints = dict(hints or {})
        self._records: list[_Record] = []

    # -- low level ------------------------------------------------------------
    def client_for(self, server: str) -> str:
        return self.client6 if _is_v6(server) else self.client

    def ip(self, src: str, dst: str, *, ttl: int, ip_id: int | None = None,
           df: bool = True) -> ScapyPacket:
        """An IPv4 or IPv6 header; IPv4 IDs are random unless given."""
        if _is_v6(src):
            return IPv6(src=src, dst=dst, hlim=ttl)
        ident = self.rng.randrange(1, 65536) if ip_id is None else ip_id
        return IP(src=src, dst=dst, ttl=ttl, id=ident, flags="DF" if df else 0)

    def emit(self, t: float, packet: ScapyPacket | bytes, comment: str | None = None) -> bytes:
        """Record `packet` at `t` seconds after the capture start; returns its bytes."""
        data = packet if isinstance(packet, bytes) else bytes(packet)
        self._records.append(_Record(round(self.start + t, 6), len(self._records), data, comment))
        return data

    def time_exceeded(self, t: float, router: str, original: bytes, *, ttl: int = 250) -> None:
        """ICMP time exceeded from `router` quoting `original` (as Linux routers do, whole)."""
        if _is_v6(router):
            self.emit(t, IPv6(src=router, dst=self.client6, hlim=ttl) / ICMPv6TimeExceeded()
                      / Raw(original))
        else:
            self.emit(t, self.ip(router, self.client, ttl=ttl, df=False)
                      / ICMP(type=11, code=0) / Raw(original))

    # -- builders -------------------------------------------------------------
    def dns(self, resolver: str, qname: str, *, at: float, qtype: str = "A",
            ttl: int | None = None, txid: int | None = None, sport: int | None = None,
            ip_id: int | None = None, df: bool = True) -> DnsQuery:
        """Send one DNS query at `at` seconds; answer it with `DnsQuery.respond`.

        Transaction id, source port and IP ID are random unless given.
        """
        rtype = TYPE_AAAA if qtype == "AAAA" else TYPE_A
        query = build_query(qname, rtype, self.rng.randrange(65536) if txid is None else txid)
        client = self.client_for(resolver)
        if sport is None:
            sport = self.rng.randrange(32768, 61000)
        sent_ttl = self.client_ttl if ttl is None else ttl
        raw = self.emit(at, self.ip(client, resolver, ttl=sent_ttl, ip_id=ip_id, df=df)
                        / UDP(sport=sport, dport=53) / Raw(query))
        return DnsQuery(self, client, sport, resolver, query, at, raw)

    def tcp(self, server: str, port: int, *, at: float, server_ttl: int = 52,
            server_df: bool = True, server_window: int = 65160, rtt_ms: float = 40.0,
            sport: int | None = None) -> TcpFlow:
        """A TCP connection from the client to `server:port` opened at `at` seconds (from a
        random source port unless `sport` is given: many flows to one server need distinct
        ones, or two connections become one)."""
        port_from = self.rng.randrange(32768, 61000) if sport is None else sport
        return TcpFlow(self, self.client_for(server), port_from, server, port, at, server_ttl,
                       server_df, server_window, rtt_ms / 1000.0)

    def quic(self, server: str, port: int = 443, *, at: float, server_ttl: int = 52,
             sport: int | None = None, rtt_ms: float = 40.0) -> QuicFlow:
        """A UDP flow from the client to `server:port` (QUIC) starting at `at` seconds, from
        a random source port unless `sport` is given."""
        port_from = self.rng.randrange(32768, 61000) if sport is None else sport
        return QuicFlow(self, self.client_for(server), port_from, server, port, at, server_ttl,
                        rtt_ms / 1000.0)

    # -- output ---------------------------------------------------------------
    @property
    def frames(self) -> list[tuple[float, bytes]]:
        """(timestamp, raw IP packet) of every packet, in capture order."""
        return [(record.ts, record.data) for record in sorted(self._records)]

    @frames.setter
    def frames(self, frames: Iterable[tuple[float, bytes]]) -> None:
        """Replace the packets (e.g. to split one run over two capture files)."""
        self._records = [_Record(ts, n, data) for n, (ts, data) in enumerate(frames)]

    def capture_hints(self) -> CaptureHints:
        return CaptureHints.from_comments([CaptureHints.HEADER + _json(self.hints)])

    def write(self, path: str | Path) -> Path:
        """Write a pcapng (`.pcapng`, `.pcapng.gz`) with the hints as section comment."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        comment = self.capture_hints().to_comment() if self.hints else None
        with CaptureWriter(out, section_comment=comment, sync=False) as writer:
            for record in sorted(self._records):
                writer.write(record.ts, record.data, record.comment)
        return out


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, sort_keys=True)


@dataclass
class DnsQuery:
    capture: Capture
    client: str
    sport: int
    resolver: str
    query: bytes
    at: float
    raw: bytes

    def respond(self, answers: Iterable[str] = (), *, delay_ms: float, ttl: int,
                ip_id: int | None = None, df: bool = True, flags: int = 0x8180,
                answer_ttl: int = 300, src: str | None = None,
                compress: bool = True, cnames: Sequence[str] = ()) -> DnsQuery:
        """A response arriving `delay_ms` after the query, with these IP and DNS fields.

        `flags` is the DNS header's second word (0x8180: QR RD RA NOERROR; add an rcode
        in the low bits, e.g. 0x8183 for NXDOMAIN); `compress`, `cnames`: see `dns_response`.
        """
        payload = dns_response(self.query, list(answers), flags=flags, answer_ttl=answer_ttl,
                               compress=compress, cnames=cnames)
        sender = src or self.resolver
        self.capture.emit(self.at + delay_ms / 1000.0,
                          self.capture.ip(sender, self.client, ttl=ttl, ip_id=ip_id, df=df)
                          / UDP(sport=53, dport=self.sport) / Raw(payload))
        return self

    def expire(self, router: str, *, delay_ms: float, ttl: int = 250) -> DnsQuery:
        """The query's TTL ran out at `router` (a TTL-limited repeat)."""
        self.capture.time_exceeded(self.at + delay_ms / 1000.0, router, self.raw, ttl=ttl)
        return self


class TcpFlow:
    """One client connection; times after the trigger are relative to it (`at_ms`)."""

    def __init__(self, capture: Capture, client: str, sport: int, server: str, dport: int,
                 at: float, server_ttl: int, server_df: bool, server_window: int,
                 rtt: float) -> None:
        self.capture = capture
        self.client, self.sport, self.server, self.dport = client, sport, server, dport
        self.t = at
        self.server_ttl, self.server_df, self.server_window = server_ttl, server_df, server_window
        self.rtt = rtt
        rng = capture.rng
        self.client_isn = rng.getrandbits(32)
        self.server_isn = rng.getrandbits(32)
        self.client_seq = (self.client_isn + 1) & 0xFFFFFFFF
        self.server_seq = (self.server_isn + 1) & 0xFFFFFFFF
        self.server_ip_id = rng.randrange(1, 60000)
        self.trigger_ts: float | None = None
        self.trigger: bytes = b""
        self.trigger_payload: bytes = b""

    # -- packets ----------------------------------------------------------------
    def _from_client(self, t: float, flags: str, payload: bytes = b"", *, seq: int | None = None,
                     ttl: int | None = None, window: int = 64240) -> bytes:
        cap = self.capture
        packet = (cap.ip(self.client, self.server, ttl=cap.client_ttl if ttl is None else ttl)
                  / TCP(sport=self.sport, dport=self.dport, flags=flags,
                        seq=self.client_seq if seq is None else seq,
                        ack=self.server_seq if "A" in flags else 0, window=window))
        if payload:
            packet = packet / Raw(payload)
        return cap.emit(t, packet)

    def _from_server(self, t: float, flags: str, payload: bytes = b"", *,
                     seq: int | None = None, ack: int | None = None) -> None:
        self.server_ip_id = (self.server_ip_id + 1) & 0xFFFF
        packet = (self.capture.ip(self.server, self.client, ttl=self.server_ttl,
                                  ip_id=self.server_ip_id, df=self.server_df)
                  / TCP(sport=self.dport, dport=self.sport, flags=flags,
                        seq=self.server_seq if seq is None else seq,
                        ack=self.client_seq if ack is None else ack,
                        window=self.server_window))
        if payload:
            packet = packet / Raw(payload)
        self.capture.emit(t, packet)

    def _after(self, at_ms: float) -> float:
        base = self.trigger_ts if self.trigger_ts is not None else self.t
        return base + at_ms / 1000.0

    # -- handshake ---------------------------------------------------------------
    def handshake(self) -> TcpFlow:
        """SYN, the server's SYN-ACK one RTT later, the client's ACK."""
        self._from_client(self.t, "S", seq=self.client_isn, window=64240)
        self._from_server(self.t + self.rtt, "SA", seq=self.server_isn)
        self.t += self.rtt + 0.0002
        self._from_client(self.t, "A")
        return self

    def forged_handshake(self, *, ttl: int, delay_ms: float, ip_id: int | None = None,
                         df: bool = False, window: int = 8192) -> TcpFlow:
        """SYN answered first by a forged SYN-ACK (another sequence number), then by the
        server's; the client completes the handshake with the forged one, and the server
        resets that ACK (RFC 9293: seq = the ACK it got)."""
        cap = self.capture
        self._from_client(self.t, "S", seq=self.client_isn, window=64240)
        forged_isn = cap.rng.getrandbits(32)
        cap.emit(self.t + delay_ms / 1000.0,
                 cap.ip(self.server, self.client, ttl=ttl, ip_id=ip_id, df=df)
                 / TCP(sport=self.dport, dport=self.sport, flags="SA", seq=forged_isn,
                       ack=self.client_seq, window=window))
        self._from_server(self.t + self.rtt, "SA", seq=self.server_isn)
        self.server_seq = (forged_isn + 1) & 0xFFFFFFFF
        self._from_client(self.t + delay_ms / 1000.0 + 0.0002, "A")
        self._from_server(self.t + delay_ms / 1000.0 + self.rtt, "R", seq=self.server_seq)
        self.t += self.rtt + 0.0004
        return self

    def syn_unanswered(self, retries: int = 2) -> TcpFlow:
        """SYN and its retransmissions (1 s, then 3 s), nothing back."""
        for i, delay in enumerate((0.0, 1.0, 3.0)[: retries + 1]):
            self._from_client(self.t + delay, "S", seq=self.client_isn)
            if i == retries:
                self.t += delay
        return self

    def syn_abandoned(self) -> TcpFlow:
        """One SYN, no answer, no retransmission: the client dropped the attempt before its
        retransmission was due (as Happy Eyeballs drops the address that loses the race)."""
        self._from_client(self.t, "S", seq=self.client_isn)
        return self

    def syn_refused(self, *, ttl: int | None = None, ip_id: int = 0, df: bool = True,
                    delay_ms: float | None = None) -> TcpFlow:
        """SYN answered by RST+ACK (seq 0, window 0), as a closed port or an injector does."""
        self._from_client(self.t, "S", seq=self.client_isn)
        cap = self.capture
        delay = self.rtt if delay_ms is None else delay_ms / 1000.0
        cap.emit(self.t + delay,
                 cap.ip(self.server, self.client, ttl=self.server_ttl if ttl is None else ttl,
                        ip_id=ip_id, df=df)
                 / TCP(sport=self.dport, dport=self.sport, flags="RA", seq=0,
                       ack=(self.client_isn + 1) & 0xFFFFFFFF, window=0))
        return self

    def syn_unreachable(self, router: str, *, code: int = 13, ttl: int = 250) -> TcpFlow:
        """SYN answered by ICMP destination unreachable (13: administratively prohibited),
        or ICMPv6 destination unreachable for an IPv6 flow (its codes: 0 no route, 1
        administratively prohibited)."""
        raw = self._from_client(self.t, "S", seq=self.client_isn)
        cap = self.capture
        icmp = ICMPv6DestUnreach(code=code) if _is_v6(router) else ICMP(type=3, code=code)
        cap.emit(self.t + self.rtt / 2, cap.ip(router, self.client, ttl=ttl, df=False)
                 / icmp / Raw(raw))
        return self

    # -- client data ---------------------------------------------------------------
    def send(self, payload: bytes, *, ttl: int | None = None, gap_ms: float = 0.3) -> bytes:
        """The client's first data segment (the trigger); returns its bytes."""
        self.t += gap_ms / 1000.0
        raw = self._from_client(self.t, "PA", payload, ttl=ttl)
        if self.trigger_ts is None:
            self.trigger_ts = self.t
            self.trigger = raw
            self.trigger_payload = payload
        self.client_seq = (self.client_seq + len(payload)) & 0xFFFFFFFF
        return raw

    def client_hello(self, sni: str | None, *, ttl: int | None = None, ech: bool = False,
                     esni: bool = False) -> bytes:
        """The ClientHello for `sni`; `ech` adds a GREASE encrypted_client_hello extension
        (RFC 9849 section 6.2: on the wire it looks like real ECH; `sni` is the outer name);
        `esni` an encrypted_server_name extension (0xffce) as Firefox sent in 2020."""
        if esni:
            return self.send(esni_client_hello(sni, self.capture.rng), ttl=ttl)
        if ech:
            return self.send(tls_proto.build_client_hello(sni, self.capture.rng, grease_ech=True),
                             ttl=ttl)
        return self.send(client_hello(sni, self.capture.rng), ttl=ttl)

    def http_get(self, host: str, path: str = "/", *, ttl: int | None = None) -> bytes:
        return self.send(http_request(host, path), ttl=ttl)

    def retransmit(self, *, at_ms: float) -> None:
        """The client resends its trigger (same sequence number)."""
        if not self.trigger:
            raise ValueError("no trigger to retransmit")
        self.capture.emit(self._after(at_ms), self.trigger)

    def client_close(self, *, at_ms: float, rst: bool = False) -> None:
        """The client gives up: FIN+ACK (or RST) `at_ms` after the trigger."""
        self._from_client(self._after(at_ms), "R" if rst else "FA")

    def expire(self, router: str, *, at_ms: float, ttl: int = 250) -> None:
        """The (TTL-limited) trigger expired at `router`."""
        self.capture.time_exceeded(self._after(at_ms), router, self.trigger, ttl=ttl)

    # -- server side -----------------------------------------------------------------
    def server_send(self, data: bytes, *, at_ms: float, gap_ms: float = 0.1,
                    fin: bool = False) -> float:
        """The server's bytes in MSS-sized segments from `at_ms`; returns the last time (ms)."""
        t_ms = at_ms
        chunks = [data[i:i + MSS] for i in range(0, len(data), MSS)] or [b""]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            self._from_server(self._after(t_ms), "FPA" if fin and last else "PA", chunk)
            self.server_seq = (self.server_seq + len(chunk)) & 0xFFFFFFFF
            if not last:
                t_ms += gap_ms
        return t_ms

    def server_lost_from_capture(self, size: int, *, segments: int = 1) -> None:
        """Server bytes the capture did not record (capture loss, not network loss): the
        server's sequence numbers and IP IDs move on as if `segments` packets carrying
        `size` bytes had been written; the client's later packets acknowledge them."""
        self.server_seq = (self.server_seq + size) & 0xFFFFFFFF
        self.server_ip_id = (self.server_ip_id + segments) & 0xFFFF

    def server_close(self, *, at_ms: float) -> None:
        """The server's own FIN (its TTL, DF, next IP ID); it takes a sequence number."""
        self._from_server(self._after(at_ms), "FA")
        self.server_seq = (self.server_seq + 1) & 0xFFFFFFFF

    def server_close_before_trigger(self, *, at_ms: float, rst: bool = False) -> None:
        """The server closes the connection (FIN, or RST) `at_ms` after the trigger, though
        it never received the trigger: it acknowledges only the bytes before it (the
        server's idle close crossing the trigger on the wire)."""
        before = (self.client_seq - len(self.trigger_payload)) & 0xFFFFFFFF
        self._from_server(self._after(at_ms), "RA" if rst else "FA", ack=before)
        if not rst:
            self.server_seq = (self.server_seq + 1) & 0xFFFFFFFF

    def keepalive(self, *, at_ms: float) -> None:
        """A TCP keep-alive probe (RFC 1122 4.2.3.6: no data, the sequence number one below
        the next) `at_ms` after the trigger, and the server's ACK of it."""
        self._from_client(self._after(at_ms), "A", seq=(self.client_seq - 1) & 0xFFFFFFFF)
        self._from_server(self._after(at_ms) + self.rtt, "A")

    def client_ack(self, *, at_ms: float) -> None:
        """The client's bare ACK of everything the server has sent so far."""
        self._from_client(self._after(at_ms), "A")

    def server_hello(self, chain: Sequence[bytes] = (), *, at_ms: float | None = None) -> float:
        delay = self.rtt * 1000.0 + 2.0 if at_ms is None else at_ms
        return self.server_send(server_flight(self.capture.rng, chain), at_ms=delay)

    def http_reply(self, response: bytes, *, at_ms: float | None = None,
                   close: bool = True) -> float:
        delay = self.rtt * 1000.0 + 5.0 if at_ms is None else at_ms
        return self.server_send(response, at_ms=delay, fin=close)

    def inject(self, flags: str, *, at_ms: float, ttl: int, ip_id: int | None = None,
               df: bool = False, window: int | None = None, seq: int | None = None,
               seq_offset: int = 0, ack: int | None = None, payload: bytes = b"",
               toward_server: bool = False) -> None:
        """A packet forged by a middlebox, `at_ms` after the trigger.

        Toward the client it claims to come from the server: sequence number the
        client expects (+`seq_offset`) unless `seq` is given; `window` defaults to
        the server's.  `toward_server` forges the client's side instead.
        """
        cap = self.capture
        if toward_server:
            src, dst, sport, dport = self.client, self.server, self.sport, self.dport
            default_seq, default_ack = self.client_seq, self.server_seq
        else:
            src, dst, sport, dport = self.server, self.client, self.dport, self.sport
            default_seq, default_ack = self.server_seq, self.client_seq
        packet = (cap.ip(src, dst, ttl=ttl, ip_id=ip_id, df=df)
                  / TCP(sport=sport, dport=dport, flags=flags,
                        seq=((default_seq + seq_offset) & 0xFFFFFFFF) if seq is None else seq,
                        ack=(default_ack if ack is None else ack) if "A" in flags else 0,
                        window=self.server_window if window is None else window))
        if payload:
            packet = packet / Raw(payload)
        cap.emit(self._after(at_ms), packet)


class QuicFlow:
    """One UDP 4-tuple carrying QUIC: client Initials (built with `protocols.quic_initial`, real
    v1/v2 protection), the server's answers, other datagrams.  Times are seconds after
    the flow's start (`at`)."""

    def __init__(self, capture: Capture, client: str, sport: int, server: str, dport: int,
                 at: float, server_ttl: int, rtt: float) -> None:
        self.capture = capture
        self.client, self.sport, self.server, self.dport = client, sport, server, dport
        self.t = at
        self.server_ttl = server_ttl
        self.rtt = rtt
        self.scid = b""
        """The SCID of the latest connection's Initials (what the server answers to)."""
        self.version = quic_proto.QUIC_V1
        self.last_initial: bytes = b""

    def _udp(self, t: float, payload: bytes, *, from_server: bool, ttl: int | None = None) -> bytes:
        cap = self.capture
        if from_server:
            packet = (cap.ip(self.server, self.client, ttl=self.server_ttl)
                      / UDP(sport=self.dport, dport=self.sport) / Raw(payload))
        else:
            packet = (cap.ip(self.client, self.server, ttl=cap.client_ttl if ttl is None else ttl)
                      / UDP(sport=self.sport, dport=self.dport) / Raw(payload))
        return cap.emit(t, packet)

    def initial(self, sni: str | None, *, at_s: float = 0.0, ech: bool = False,
                version: int = quic_proto.QUIC_V1, ttl: int | None = None,
                alpn: tuple[str, ...] = ("h3",)) -> bytes:
        """A new QUIC connection's first flight (fresh DCID/SCID) with `sni` in its
        ClientHello, `at_s` after the flow's start; `ech` adds GREASE ECH.  Returns the
        (first) datagram."""
        rng = self.capture.rng
        dcid, self.scid = rng.randbytes(8), rng.randbytes(8)
        self.version = version
        hello = tls_proto.build_client_hello(
            sni, rng, alpn=alpn, tls12=False, grease_ech=ech, record=False,
            quic_transport_parameters=quic_proto.client_transport_parameters(self.scid))
        first = b""
        for n, datagram in enumerate(quic_initial.build_initial_datagrams(
                hello, dcid=dcid, scid=self.scid, version=version)):
            raw = self._udp(self.t + at_s + n * 0.0001, datagram, from_server=False, ttl=ttl)
            first = first or raw
        self.last_initial = first
        return first

    def answer(self, *, at_s: float | None = None) -> None:
        """The server's Initial for the latest connection (its ServerHello is opaque here:
        the analysis reads the long header only), one RTT after `at_s` by default."""
        rng = self.capture.rng
        when = self.t + (self.rtt + 0.002 if at_s is None else at_s)
        packet = quic_initial.build_initial(
            quic_proto.crypto_frame(0, rng.randbytes(90)), dcid=self.scid, scid=rng.randbytes(8),
            version=self.version, key_dcid=rng.randbytes(8), client=False, pad_to=1200)
        self._udp(when, packet, from_server=True)

    def datagram(self, payload: bytes, *, at_s: float, ttl: int | None = None) -> None:
        """Any other client datagram on the flow (e.g. the probe's payload after a trigger)."""
        self._udp(self.t + at_s, payload, from_server=False, ttl=ttl)

    def server_datagram(self, payload: bytes, *, at_s: float) -> None:
        self._udp(self.t + at_s, payload, from_server=True)

    def expire(self, router: str, *, at_s: float, ttl: int = 250) -> None:
        """The latest (TTL-limited) Initial expired at `router`."""
        self.capture.time_exceeded(self.t + at_s, router, self.last_initial, ttl=ttl)
