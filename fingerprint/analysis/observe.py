"""Packets -> observations: DNS exchanges and TCP flows, with every answer kept.

This is the one path from packets to facts, shared by live probes and capture
replay.  It streams: flows idle for longer than `IDLE_EVICT_S` of capture time
are closed and handed to a sink, and every per-flow list is bounded, so memory
depends on the number of concurrent flows, not on the capture's length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fingerprint.capture.packet import (
    ACK,
    FIN,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    RST,
    SYN,
    Packet,
)
from fingerprint.protocols import http as http_proto
from fingerprint.protocols import tls as tls_proto
from fingerprint.protocols.dns import DnsMessage, parse_dns

if TYPE_CHECKING:
    from fingerprint.analysis.outcome import FlowOutcome

DNS_PORTS = frozenset({53, 5353})
DNS_IDLE_S = 10.0
"""An exchange is closed this long (capture time) after its last packet: late forged or
genuine answers arrive within seconds."""
TCP_IDLE_S = 30.0
"""A flow is closed after this much silence; only the start of a flow carries a verdict."""
SWEEP_EVERY_S = 5.0
STORED_PAYLOAD = 512
"""Bytes of each kept server packet's payload (injected texts are short; flights are parsed)."""
MAX_RESPONSES = 16
DNS_MESSAGE_CACHE = 4096
"""Distinct DNS messages remembered (by everything but the ID) to skip parsing repeats."""
MAX_SERVER_PACKETS = 32
MAX_ICMP = 8
CLIENT_STREAM_LIMIT = 16384
SERVER_STREAM_LIMIT = 65536
MAX_SEGMENTS = 256
_SYN_FIN_RST = SYN | FIN | RST


@dataclass(slots=True)
class DnsResponse:
    packet: Packet
    message: DnsMessage
    delay: float
    """Seconds between the (first) query and this response."""


@dataclass(slots=True)
class DnsExchange:
    client: str
    client_port: int
    resolver: str
    txid: int
    qname: str
    qtype: int
    query: Packet
    queries: int = 1
    responses: list[DnsResponse] = field(default_factory=list)
    icmp: list[Packet] = field(default_factory=list)
    last_ts: float = 0.0
    closed_ts: float = 0.0
    """Capture time when the observer closed it (infinite when a new query took its
    key): an unanswered query younger than the silence threshold then is pending."""

    @property
    def query_ttl(self) -> int:
        return self.query.ttl


class _Stream:
    """In-order reassembly of the first `limit` bytes of one direction."""

    __slots__ = ("base", "done", "limit", "segments")

    def __init__(self, limit: int) -> None:
        self.base: int | None = None
        self.limit = limit
        self.segments: dict[int, bytes] = {}
        self.done = False

    def add(self, seq: int, payload: bytes) -> None:
        if self.base is None or self.done or not payload:
            return
        offset = (seq - self.base) & 0xFFFFFFFF
        if offset >= self.limit or len(self.segments) >= MAX_SEGMENTS:
            return
        if len(payload) > len(self.segments.get(offset, b"")):
            self.segments[offset] = payload[: self.limit - offset]

    def assemble(self) -> bytes:
        segments = self.segments
        if len(segments) == 1 and 0 in segments:
            return segments[0]  # the usual case: one ClientHello / one server flight
        out = bytearray()
        for offset in sorted(self.segments):
            if offset > len(out):
                break
            seg = self.segments[offset]
            if offset + len(seg) > len(out):
                out += seg[len(out) - offset:]
        return bytes(out)


CLOSED_STREAM = _Stream(0)
"""Shared by every closed flow: it accepts nothing (limit 0) and holds nothing."""


@dataclass(slots=True)
class TcpFlow:
    client: str
    client_port: int
    server: str
    server_port: int
    first_ts: float
    syn: Packet | None = None
    syn_count: int = 0
    synack: Packet | None = None
    handshake_rst: Packet | None = None
    """An RST from the server side before any SYN-ACK (RST to SYN)."""
    synack_conflicts: int = 0
    """SYN-ACKs whose sequence number differs from the first one's: a forged SYN-ACK
    raced the server's (the GFW's residual block answers SYNs so)."""
    trigger: Packet | None = None
    """First client data packet (ClientHello or HTTP request)."""
    trigger_sends: int = 0
    client_ack: int | None = None
    """The furthest acknowledgment number the client sent after its trigger: server bytes
    its stack received in order, whether or not the capture recorded them."""
    client_closed_ts: float | None = None
    client_data_last_ts: float | None = None
    """When the client last sent data past its trigger (new bytes, not a resend of it)."""
    client_closes: list[Packet] = field(default_factory=list)
    """RST/FIN packets from the client address after the SYN-ACK (bounded).  At the
    server end of a connection an injector's resets aimed at the server arrive here."""
    server_packets: list[Packet] = field(default_factory=list)
    """Packets from the server address after the trigger (bounded)."""
    server_packet_count: int = 0
    server_bytes: int = 0
    server_data_first_ts: float | None = None
    server_data_last_ts: float | None = None
    icmp: list[Packet] = field(default_factory=list)
    last_ts: float = 0.0
    client_stream: _Stream = field(default_factory=lambda: _Stream(CLIENT_STREAM_LIMIT))
    server_stream: _Stream = field(default_factory=lambda: _Stream(SERVER_STREAM_LIMIT))
    # Filled when the flow is closed:
    client_hello: tls_proto.ClientHello | None = None
    http_request: http_proto.HttpRequest | None = None
    server_data: bytes = b""
    """The first bytes of the server's stream (the rest is parsed into `flight` / `response`)."""
    flight: tls_proto.ServerFlight | None = None
    response: http_proto.HttpResponse | None = None
    trigger_len: int = 0
    """Payload bytes of the trigger packet (kept when the packet is reduced to its header)."""
    closed_ts: float = 0.0
    """Capture time when the observer closed the flow (0 while it is open)."""
    compact: bool = False
    """Reduced to header facts (not cited as evidence): see `fingerprint.analysis.flowstore`."""
    outcome: FlowOutcome | None = None
    """What the classifier decided when the flow closed (`outcome.flow_outcome`)."""

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.client, self.client_port, self.server, self.server_port)

    @property
    def trigger_kind(self) -> str | None:
        if self.client_hello is not None:
            return "tls"
        if self.http_request is not None:
            return "http"
        return None

    @property
    def trigger_name(self) -> str | None:
        if self.client_hello is not None:
            return self.client_hello.sni
        if self.http_request is not None:
            return self.http_request.host
        return None


@dataclass(slots=True)
class CaptureHints:
    """Facts a probe run records in its capture (pcapng section comment).

    Controls that cannot be read from packets: answers from the encrypted
    control resolver, addresses known to run no resolver, which address was
    probed for which platform.  Captures from other tools have none of this.
    """

    control_answers: dict[str, list[str]] = field(default_factory=dict)
    no_resolver: set[str] = field(default_factory=set)
    address_platform: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    HEADER = "fingerprint-probe "

    @classmethod
    def from_comments(cls, comments: Iterable[str]) -> CaptureHints:
        hints = cls()
        for comment in comments:
            if not comment.startswith(cls.HEADER):
                continue
            try:
                data = json.loads(comment[len(cls.HEADER):])
            except (ValueError, RecursionError):  # RecursionError: a deeply nested comment
                continue
            if not isinstance(data, dict):
                continue
            hints.raw.update(data)
            answers = data.get("control_answers", {})
            if isinstance(answers, dict):
                for name, addrs in answers.items():
                    if isinstance(addrs, list):
                        hints.control_answers[str(name).lower()] = [str(a) for a in addrs]
            no_resolver = data.get("no_resolver", [])
            if isinstance(no_resolver, list):
                hints.no_resolver.update(str(addr) for addr in no_resolver)
            mapping = data.get("address_platform", {})
            if isinstance(mapping, dict):
                hints.address_platform.update({str(k): str(v) for k, v in mapping.items()})
        return hints

    def to_comment(self) -> str:
        data = dict(self.raw)
        data.update({"control_answers": self.control_answers,
                     "no_resolver": sorted(self.no_resolver),
                     "address_platform": self.address_platform})
        return self.HEADER + json.dumps(data, sort_keys=True)


@dataclass(slots=True)
class Observations:
    dns: list[DnsExchange] = field(default_factory=list)
    tcp: list[TcpFlow] = field(default_factory=list)
    name_addresses: dict[str, set[str]] = field(default_factory=dict)
    """Every A/AAAA answer seen for each name (to map addresses to platforms)."""
    packets: int = 0
    last_ts: float = 0.0


FlowSink = Callable[[DnsExchange | TcpFlow], None]


class UdpObserver(Protocol):
    """A second observer for UDP (QUIC), fed by `Observer` so live and replay share one path."""

    def feed(self, pkt: Packet) -> None: ...

    def close(self) -> None: ...


class Observer:
    """Feeds packets in capture order; emits closed exchanges and flows to `sink`."""

    def __init__(self, sink: FlowSink, udp: UdpObserver | None = None) -> None:
        self._sink = sink
        self._udp = udp
        """Sees every UDP datagram and every ICMP error quoting one (QUIC: `analysis.quic`)."""
        self._dns: dict[tuple[str, int, str, int, int], DnsExchange] = {}
        """By (client, port, resolver, ID, query type): a stub may send its A and AAAA
        queries from one socket with one ID, and a response answers the question it
        carries (RFC 5452 section 9.1)."""
        self._tcp: dict[tuple[str, int, str, int], TcpFlow] = {}
        self.packets = 0
        self.last_ts = 0.0
        self._next_sweep = 0.0
        self._dns_messages: dict[bytes, DnsMessage | None] = {}

    # -- feeding -------------------------------------------------------------
    def feed(self, pkt: Packet) -> None:
        self.packets += 1
        if pkt.ts > self.last_ts:
            self.last_ts = pkt.ts
        proto = pkt.proto
        if proto == PROTO_TCP:
            self._feed_tcp(pkt)
        elif proto == PROTO_UDP:
            if pkt.dport in DNS_PORTS or pkt.sport in DNS_PORTS:
                self._feed_dns(pkt)
            if self._udp is not None:
                self._udp.feed(pkt)
        elif (proto == PROTO_ICMP or proto == PROTO_ICMPV6) and pkt.quoted is not None:
            self._feed_icmp(pkt)
            if self._udp is not None and pkt.quoted.is_udp:
                self._udp.feed(pkt)
        if self.last_ts >= self._next_sweep:
            self._sweep()

    def _sweep(self) -> None:
        self._next_sweep = self.last_ts + SWEEP_EVERY_S
        tables: tuple[tuple[dict[Any, Any], float], ...] = (
            (self._dns, self.last_ts - DNS_IDLE_S), (self._tcp, self.last_ts - TCP_IDLE_S))
        for table, horizon in tables:
            stale = [k for k, v in table.items() if v.last_ts < horizon]
            for key in stale:
                self._close(table.pop(key))

    def _close(self, item: DnsExchange | TcpFlow, superseded: bool = False) -> None:
        # A superseded exchange can get no more answers: it is over, not pending.
        item.closed_ts = float("inf") if superseded else self.last_ts
        if isinstance(item, TcpFlow):
            _finish_flow(item)
        self._sink(item)

    def close(self) -> None:
        for table in (self._dns, self._tcp):
            for item in table.values():
                self._close(item)
            table.clear()
        if self._udp is not None:
            self._udp.close()

    # -- DNS ------------------------------------------------------------------
    def _feed_dns(self, pkt: Packet) -> None:
        message = self._parse_dns(pkt.payload)
        if message is None:
            return
        if not message.is_response:
            if pkt.dport not in DNS_PORTS:
                return
            key = (pkt.src, pkt.sport, pkt.dst, message.txid, message.qtype)
            exchange = self._dns.get(key)
            if exchange is not None and exchange.qname == message.qname:
                exchange.queries += 1
                exchange.last_ts = pkt.ts
                return
            if exchange is not None:
                self._close(exchange, superseded=True)
            self._dns[key] = DnsExchange(pkt.src, pkt.sport, pkt.dst, message.txid,
                                         message.qname, message.qtype, pkt, last_ts=pkt.ts)
            return
        key = (pkt.dst, pkt.dport, pkt.src, message.txid, message.qtype)
        exchange = self._dns.get(key)
        if exchange is None or exchange.qname != message.qname:
            return  # a response to a query we did not see: nothing to compare with
        if len(exchange.responses) < MAX_RESPONSES:
            exchange.responses.append(DnsResponse(pkt, message, pkt.ts - exchange.query.ts))
        exchange.last_ts = pkt.ts

    def _parse_dns(self, payload: bytes) -> DnsMessage | None:
        """`parse_dns`, remembering messages by everything but their ID: queries for a
        name, and the resolver's answers to them, repeat byte for byte."""
        body = payload[2:]
        cache = self._dns_messages
        if body in cache:
            known = cache[body]
            if known is None or len(payload) < 2:
                return known
            txid = (payload[0] << 8) | payload[1]
            if known.txid == txid:
                return known
            return DnsMessage(txid, known.flags, known.qname, known.qtype, known.answers,
                              known.answer_count)
        if len(cache) >= DNS_MESSAGE_CACHE:
            cache.clear()
        message = cache[body] = parse_dns(payload)
        return message

    # -- TCP ------------------------------------------------------------------
    def _feed_tcp(self, pkt: Packet) -> None:
        flags = pkt.tcp_flags
        fwd = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        flow = self._tcp.get(fwd)
        if flow is not None:  # the usual case first: a packet of a known flow
            flow.last_ts = pkt.ts
            # A client's bare ACK changes nothing but the time and the furthest ACK.
            if flags & _SYN_FIN_RST or pkt.payload:
                self._client_packet(flow, pkt, flags)
            if flags & ACK and flow.trigger is not None:
                # Inline (every client ACK of a download passes here): the furthest one.
                last = flow.client_ack
                if last is None or 0 < (pkt.ack - last) & 0xFFFFFFFF < 0x80000000:
                    flow.client_ack = pkt.ack
            return
        rev = (pkt.dst, pkt.dport, pkt.src, pkt.sport)
        flow = self._tcp.get(rev)
        if flow is not None:
            flow.last_ts = pkt.ts
            # Nor does a server's before the trigger (as `_server_packet` finds).
            if flags & _SYN_FIN_RST or pkt.payload or flow.trigger is not None:
                self._server_packet(flow, pkt, flags)
            return
        # A new flow: who is the client?
        if flags & SYN and not flags & ACK:
            flow = TcpFlow(pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.ts,
                           client_stream=_Stream(CLIENT_STREAM_LIMIT),
                           server_stream=_Stream(SERVER_STREAM_LIMIT))
            self._tcp[fwd] = flow
            from_client = True
        elif flags & SYN and flags & ACK:
            flow = TcpFlow(pkt.dst, pkt.dport, pkt.src, pkt.sport, pkt.ts,
                           client_stream=_Stream(CLIENT_STREAM_LIMIT),
                           server_stream=_Stream(SERVER_STREAM_LIMIT))
            self._tcp[rev] = flow
            from_client = False
        else:
            # Mid-flow start: the side talking to a well-known port is the client.
            if pkt.dport < pkt.sport or (pkt.dport in (80, 443) and pkt.sport not in (80, 443)):
                flow = TcpFlow(pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.ts)
                self._tcp[fwd] = flow
                from_client = True
            else:
                flow = TcpFlow(pkt.dst, pkt.dport, pkt.src, pkt.sport, pkt.ts)
                self._tcp[rev] = flow
                from_client = False
            flow.client_stream.base = pkt.seq if from_client else None
            flow.server_stream.base = pkt.seq if not from_client else None
        flow.last_ts = pkt.ts
        if from_client:
            self._client_packet(flow, pkt, flags)
        else:
            self._server_packet(flow, pkt, flags)

    def _client_packet(self, flow: TcpFlow, pkt: Packet, flags: int) -> None:
        if flags & SYN:
            flow.syn_count += 1
            if flow.syn is None:
                flow.syn = pkt
                flow.client_stream.base = (pkt.seq + 1) & 0xFFFFFFFF
            return
        if flags & (FIN | RST):
            if flow.client_closed_ts is None:
                flow.client_closed_ts = pkt.ts
            if flow.synack is not None and len(flow.client_closes) < MAX_ICMP:
                flow.client_closes.append(pkt)
        if pkt.payload:
            if flow.trigger is None:
                flow.trigger = pkt
                if flow.client_stream.base is None:
                    flow.client_stream.base = pkt.seq
            if pkt.seq == flow.trigger.seq:
                flow.trigger_sends += 1
            else:
                flow.client_data_last_ts = pkt.ts
            flow.client_stream.add(pkt.seq, pkt.payload)

    def _server_packet(self, flow: TcpFlow, pkt: Packet, flags: int) -> None:
        if flags & SYN:
            if flow.synack is None:
                flow.synack = pkt
                flow.server_stream.base = (pkt.seq + 1) & 0xFFFFFFFF
            elif pkt.seq != flow.synack.seq:
                flow.synack_conflicts += 1
            return
        if flow.synack is None and flow.trigger is None and flags & RST:
            if flow.handshake_rst is None:
                flow.handshake_rst = pkt
            return
        if flow.trigger is None and not pkt.payload and not flags & (RST | FIN):
            return  # handshake ACKs carry no verdict
        flow.server_packet_count += 1
        if len(flow.server_packets) < MAX_SERVER_PACKETS:
            flow.server_packets.append(pkt)
        if pkt.payload:
            flow.server_bytes += len(pkt.payload)
            if flow.server_data_first_ts is None:
                flow.server_data_first_ts = pkt.ts
            flow.server_data_last_ts = pkt.ts
            if flow.server_stream.base is None:
                flow.server_stream.base = pkt.seq
            flow.server_stream.add(pkt.seq, pkt.payload)

    # -- ICMP -----------------------------------------------------------------
    def _feed_icmp(self, pkt: Packet) -> None:
        q = pkt.quoted
        assert q is not None
        if q.is_tcp:
            flow = self._tcp.get((q.src, q.sport, q.dst, q.dport))
            if flow is not None and len(flow.icmp) < MAX_ICMP:
                flow.icmp.append(pkt)
                flow.last_ts = pkt.ts
        elif q.is_udp and q.dport in DNS_PORTS:
            message = parse_dns(q.payload) if q.payload else None
            if message is not None:
                exchange = self._dns.get((q.src, q.sport, q.dst, message.txid, message.qtype))
            else:
                exchange = next((e for k, e in reversed(self._dns.items())
                                 if k[:3] == (q.src, q.sport, q.dst)), None)
            if exchange is not None and len(exchange.icmp) < MAX_ICMP:
                exchange.icmp.append(pkt)
                exchange.last_ts = pkt.ts


def _finish_flow(flow: TcpFlow) -> None:
    client_bytes = flow.client_stream.assemble()
    if client_bytes:
        if tls_proto.looks_like_tls_record(client_bytes):
            flow.client_hello = tls_proto.parse_client_hello(client_bytes)
        elif http_proto.looks_like_request(client_bytes):
            flow.http_request = http_proto.parse_request(client_bytes)
    server_data = flow.server_stream.assemble()
    if server_data:
        flow.flight = tls_proto.parse_server_flight(server_data)
        if not flow.flight.is_tls:  # an HTTP response never starts like a TLS record
            flow.response = http_proto.parse_response(server_data)
    flow.server_data = server_data[:STORED_PAYLOAD]
    if flow.trigger is not None:
        flow.trigger_len = len(flow.trigger.payload)
    for pkt in flow.server_packets:
        if len(pkt.payload) > STORED_PAYLOAD:
            pkt.payload = pkt.payload[:STORED_PAYLOAD]
    # Free reassembly buffers: only the parsed results are kept.
    flow.client_stream = CLOSED_STREAM
    flow.server_stream = CLOSED_STREAM


def header_only(pkt: Packet) -> Packet:
    """A copy of `pkt` with the facts a verdict or a measurement reads of a flow that is
    not cited as evidence (addresses, times, TTL, IP ID, DF, flags, ICMP type), without
    its payload, quoted packet or sequence numbers."""
    return Packet(pkt.frame, pkt.ts, pkt.version, pkt.src, pkt.dst, pkt.ttl, pkt.ip_id, pkt.df,
                  pkt.proto, pkt.ip_len, 0, 0, pkt.tcp_flags, 0, 0, 0, b"", pkt.icmp_type,
                  pkt.icmp_code, None, None, pkt.truncated, pkt.capture)


def compact_flow(flow: TcpFlow) -> None:
    """Reduce a closed flow whose outcome is known to header facts.

    A big capture holds up to `MAX_FULL_ITEMS` attempts per target; only a few
    are cited as evidence, the others count towards the majority and appear in
    measurements by their times and header fields.  Payloads, server packets and
    quoted packets are what take the memory.
    """
    if flow.syn is not None:
        flow.syn = header_only(flow.syn)
    if flow.synack is not None:
        flow.synack = header_only(flow.synack)
    if flow.handshake_rst is not None:
        flow.handshake_rst = header_only(flow.handshake_rst)
    if flow.trigger is not None:
        flow.trigger = header_only(flow.trigger)
    if flow.icmp:
        flow.icmp = [header_only(p) for p in flow.icmp]
    if flow.client_closes:
        flow.client_closes = [header_only(p) for p in flow.client_closes]
    flow.server_packets = []
    flow.compact = True


def observe(packets: Iterable[Packet]) -> Observations:
    """Run the observer over `packets` and collect everything (for small inputs and tests)."""
    result = Observations()

    def sink(item: DnsExchange | TcpFlow) -> None:
        if isinstance(item, DnsExchange):
            result.dns.append(item)
        else:
            result.tcp.append(item)

    observer = Observer(sink)
    for pkt in packets:
        observer.feed(pkt)
    observer.close()
    result.packets = observer.packets
    result.last_ts = observer.last_ts
    return result
