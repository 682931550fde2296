"""Packets -> QUIC observations: one record per UDP flow, with what each side sent.

Sans-IO and streaming like `observe.Observer`: packets are fed in capture
order, a flow silent for `QUIC_IDLE_S` of capture time is closed and handed to
the sink, and every per-flow list is bounded.

A flow is the UDP 4-tuple (client, client port, server, server port).  It is
opened by a datagram to a QUIC port (443 by default) or by any datagram whose
payload is a QUIC v1/v2 client Initial that decrypts (so QUIC on other ports is
seen too: the gfw.report TTL experiments send their Initials to UDP 53).
For each flow it keeps:

- the client's QUIC connections, keyed by the first Destination Connection ID:
  every datagram carrying their Initials (time, IP TTL), and the ClientHello
  reassembled from the CRYPTO frames (server name, ALPN, ECH, version);
- the server's datagrams with their kind read from the long header (Initial,
  Handshake, Retry, Version Negotiation, short header): an Initial or Handshake
  is the sign the server got the ClientHello (RFC 9000 section 17.2);
- every other client datagram (later Initials, non-QUIC payloads such as the
  gfw.report experiments send after a trigger), so the analysis can tell
  whether the flow stayed blocked after the trigger (residual blocking) and for
  how long;
- ICMP errors that quote a datagram of the flow (time-exceeded for the
  TTL-limited Initials that localise a censor).

The verdicts (`quic.sni_drop`, `quic.drop`, residual blocking) are the
analysis rules' job; this module only says what was on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from fingerprint.analysis.outcome import UNROUTED_TTLS
from fingerprint.capture.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP, Packet
from fingerprint.protocols import quic, quic_initial
from fingerprint.protocols.tls import ClientHello

QUIC_PORTS = frozenset({443})
QUIC_IDLE_S = 60.0
"""A flow is closed after this much silence.  The GFW forgets an idle UDP flow after
60 s (gfw.report flow-tracking experiment); its residual block lasts about 180 s,
which the analysis sees across flows of the same (client, server, port)."""
SWEEP_EVERY_S = 5.0
MAX_CLIENT_DATAGRAMS = 256
MAX_SERVER_DATAGRAMS = 64
MAX_CONNECTIONS = 16
MAX_ICMP = 64
"""TTL-limited Initials draw one time-exceeded each: a whole path's worth."""


class ClientKind(StrEnum):
    INITIAL = "initial"
    """Carries at least one client Initial that decrypted."""
    QUIC_OTHER = "quic_other"
    """A QUIC long header that is not a readable client Initial (0-RTT, Handshake, damaged)."""
    SHORT = "short"
    """Looks like a short-header packet (after a handshake)."""
    OTHER = "other"
    """Not QUIC: arbitrary UDP payload on the flow."""


@dataclass(slots=True)
class ClientDatagram:
    packet: Packet
    kind: ClientKind
    dcid: bytes = b""
    """The first Initial's DCID (INITIAL kind): which connection it belongs to."""


@dataclass(slots=True)
class ServerDatagram:
    packet: Packet
    kind: quic.ServerDatagram
    dcid: bytes = b""
    """The long header's DCID (the client's SCID), to pair it with a connection."""


@dataclass(slots=True)
class QuicConnection:
    """A client's attempt: the Initials sharing one first DCID."""

    dcid: bytes
    scid: bytes
    version: int
    initials: list[Packet] = field(default_factory=list)
    """Datagrams that carried its Initials, in order (the first is the trigger)."""
    client_hello: ClientHello | None = None
    complete: bool = False
    """The whole ClientHello was reassembled from the CRYPTO frames."""
    first_answer: ServerDatagram | None = None
    """The server's first Initial/Handshake/Retry/Version Negotiation for it."""
    _initials: quic.ClientInitials | None = field(default=None, repr=False, compare=False)

    @property
    def sni(self) -> str | None:
        return self.client_hello.sni if self.client_hello else None

    @property
    def ech_present(self) -> bool:
        return self.client_hello.ech_present if self.client_hello else False

    @property
    def first_ts(self) -> float:
        return self.initials[0].ts

    @property
    def trigger_ttl(self) -> int:
        """IP TTL of the first Initial (a TTL-limited probe sets it low)."""
        return self.initials[0].ttl


@dataclass(slots=True)
class QuicFlow:
    client: str
    client_port: int
    server: str
    server_port: int
    first_ts: float
    last_ts: float = 0.0
    closed_ts: float = 0.0
    connections: list[QuicConnection] = field(default_factory=list)
    client_datagrams: list[ClientDatagram] = field(default_factory=list)
    server_datagrams: list[ServerDatagram] = field(default_factory=list)
    icmp: list[Packet] = field(default_factory=list)
    client_total: int = 0
    """Client datagrams seen (the list keeps the first `MAX_CLIENT_DATAGRAMS`)."""
    server_total: int = 0

    @property
    def three_tuple(self) -> tuple[str, str, int]:
        """(client, server, server port): what the GFW's residual block covers."""
        return self.client, self.server, self.server_port

    @property
    def answered(self) -> bool:
        """The server sent anything QUIC back on this flow."""
        return any(d.kind is not quic.ServerDatagram.NOT_QUIC for d in self.server_datagrams)

    @property
    def replied(self) -> bool:
        """The server sent any datagram back (QUIC or not: a UDP service on another port)."""
        return bool(self.server_datagrams)

    def client_datagrams_after(self, ts: float) -> list[ClientDatagram]:
        return [d for d in self.client_datagrams if d.packet.ts > ts]

    def server_datagrams_after(self, ts: float) -> list[ServerDatagram]:
        return [d for d in self.server_datagrams if d.packet.ts > ts]


QuicSink = Callable[[QuicFlow], None]
_FlowKey = tuple[str, int, str, int]


class QuicObserver:
    """Feeds packets in capture order; emits closed `QuicFlow`s to `sink`."""

    def __init__(self, sink: QuicSink, *, ports: Iterable[int] = QUIC_PORTS) -> None:
        self._sink = sink
        self._ports = frozenset(ports)
        self._flows: dict[_FlowKey, QuicFlow] = {}
        self.last_ts = 0.0
        self._next_sweep = 0.0
        self.malformed = 0
        """Datagrams to a QUIC port whose long header or Initial did not parse/decrypt."""

    def feed(self, pkt: Packet) -> None:
        if pkt.ts > self.last_ts:
            self.last_ts = pkt.ts
        # Sweep first: a datagram after a long silence starts a new flow (as the GFW,
        # which forgets idle flows, sees it), not the continuation of the old one.
        if self.last_ts >= self._next_sweep:
            self._sweep()
        proto = pkt.proto
        if proto == PROTO_UDP:
            if pkt.frag_offset == 0:
                self._feed_udp(pkt)
        elif (proto == PROTO_ICMP or proto == PROTO_ICMPV6) and pkt.quoted is not None:
            self._feed_icmp(pkt)

    def close(self) -> None:
        for flow in self._flows.values():
            self._close(flow)
        self._flows.clear()

    def _sweep(self) -> None:
        self._next_sweep = self.last_ts + SWEEP_EVERY_S
        horizon = self.last_ts - QUIC_IDLE_S
        for key in [k for k, f in self._flows.items() if f.last_ts < horizon]:
            self._close(self._flows.pop(key))

    def _close(self, flow: QuicFlow) -> None:
        flow.closed_ts = self.last_ts
        for conn in flow.connections:
            conn._initials = None  # the reassembly buffers are no longer needed
        self._sink(flow)

    # -- UDP -------------------------------------------------------------------
    def _feed_udp(self, pkt: Packet) -> None:
        forward = self._flows.get((pkt.src, pkt.sport, pkt.dst, pkt.dport))
        if forward is not None:
            self._from_client(forward, pkt)
            return
        backward = self._flows.get((pkt.dst, pkt.dport, pkt.src, pkt.sport))
        if backward is not None:
            self._from_server(backward, pkt)
            return
        payload = pkt.payload
        to_port = pkt.dport in self._ports
        if not to_port and pkt.sport in self._ports:
            return  # a server's datagram for a flow we never saw start
        if not to_port and not _looks_like_client_initial(payload):
            return
        flow = QuicFlow(pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.ts)
        self._flows[(pkt.src, pkt.sport, pkt.dst, pkt.dport)] = flow
        self._from_client(flow, pkt)

    def _from_client(self, flow: QuicFlow, pkt: Packet) -> None:
        flow.last_ts = pkt.ts
        flow.client_total += 1
        kind, dcid = self._read_client(flow, pkt)
        if len(flow.client_datagrams) < MAX_CLIENT_DATAGRAMS:
            flow.client_datagrams.append(ClientDatagram(pkt, kind, dcid))

    def _read_client(self, flow: QuicFlow, pkt: Packet) -> tuple[ClientKind, bytes]:
        payload = pkt.payload
        if not payload:
            return ClientKind.OTHER, b""
        if not payload[0] & 0x80:
            return (ClientKind.SHORT if payload[0] & 0x40 and len(payload) >= 21
                    else ClientKind.OTHER), b""
        headers = quic.long_headers(payload)
        if not headers:
            if pkt.dport in self._ports and quic.looks_like_quic_long_header(payload):
                self.malformed += 1
            return ClientKind.OTHER, b""
        first_dcid = b""
        for header in headers:
            if header.packet_type is not quic.PacketType.INITIAL:
                continue
            packet = quic_initial.decrypt_initial(payload, header)
            if packet is None:
                self.malformed += 1
                continue
            conn = self._connection(flow, header, pkt)
            if conn is None:
                continue
            if not first_dcid:
                first_dcid = header.dcid
                if len(conn.initials) < MAX_CLIENT_DATAGRAMS:
                    conn.initials.append(pkt)
            assert conn._initials is not None
            conn._initials.feed(packet)
            conn.client_hello = conn._initials.client_hello
            conn.complete = conn._initials.complete
        return (ClientKind.INITIAL, first_dcid) if first_dcid else (ClientKind.QUIC_OTHER, b"")

    def _connection(self, flow: QuicFlow, header: quic.LongHeader, pkt: Packet) -> QuicConnection | None:
        for conn in flow.connections:
            if conn.dcid == header.dcid:
                if conn._initials is None:
                    conn._initials = quic.ClientInitials(header.version, header.dcid, header.scid)
                return conn
        if len(flow.connections) >= MAX_CONNECTIONS:
            return None
        conn = QuicConnection(header.dcid, header.scid, header.version,
                              _initials=quic.ClientInitials(header.version, header.dcid, header.scid))
        flow.connections.append(conn)
        return conn

    def _from_server(self, flow: QuicFlow, pkt: Packet) -> None:
        flow.last_ts = pkt.ts
        flow.server_total += 1
        kind = quic.classify_datagram(pkt.payload)
        dcid = b""
        if kind is not quic.ServerDatagram.NOT_QUIC and kind is not quic.ServerDatagram.SHORT:
            header = quic.parse_long_header(pkt.payload)
            dcid = header.dcid if header is not None else b""
        record = ServerDatagram(pkt, kind, dcid)
        if len(flow.server_datagrams) < MAX_SERVER_DATAGRAMS:
            flow.server_datagrams.append(record)
        if kind is quic.ServerDatagram.NOT_QUIC or kind is quic.ServerDatagram.SHORT:
            return
        conn = _answered_connection(flow, record)
        if conn is not None and conn.first_answer is None:
            conn.first_answer = record

    # -- ICMP ------------------------------------------------------------------
    def _feed_icmp(self, pkt: Packet) -> None:
        q = pkt.quoted
        assert q is not None
        if q.proto != PROTO_UDP:
            return
        flow = self._flows.get((q.src, q.sport, q.dst, q.dport))
        if flow is not None and len(flow.icmp) < MAX_ICMP:
            flow.icmp.append(pkt)
            flow.last_ts = pkt.ts


def _answered_connection(flow: QuicFlow, record: ServerDatagram) -> QuicConnection | None:
    """The connection a server long header answers: the one whose SCID it echoes as
    DCID (Version Negotiation echoes both), else the latest one started before it."""
    earlier = [c for c in flow.connections if c.initials and c.first_ts <= record.packet.ts]
    for conn in reversed(earlier):
        if conn.scid == record.dcid:
            return conn
    return earlier[-1] if earlier else None


def capture_end_of_quic(flow: QuicFlow) -> str | None:
    """Which end of a UDP flow the capture was taken at, from its IP TTLs (as
    `outcome.capture_end_of` reads a TCP handshake).

    At the server the client's datagrams all arrive routed (no initial TTL left, the
    TTL-limited ones included) and the server's own leave with an initial TTL; at the
    client its datagrams carry their initial TTL (a TTL-limited Initial does not, but
    the datagrams around it do) and the server's arrive routed.  A flow the server
    never answered is read from the client's datagrams alone.  None when they disagree.
    """
    client_ttls = {d.packet.ttl for d in flow.client_datagrams}
    if not client_ttls:
        return None
    server_ttls = {d.packet.ttl for d in flow.server_datagrams}
    client_routed = client_ttls.isdisjoint(UNROUTED_TTLS)
    server_routed = server_ttls.isdisjoint(UNROUTED_TTLS)
    if client_routed and (not server_ttls or not server_routed):
        return "server"
    if not client_routed and server_routed:
        return "client"
    return None


def _looks_like_client_initial(payload: bytes) -> bool:
    """A v1/v2 client Initial that authenticates under the keys of its own DCID.

    The header check is cheap and rules out nearly every other UDP payload; the
    AEAD tag then rules out the rest, so a DNS query cannot open a QUIC flow.
    """
    if len(payload) < 40 or not payload[0] & 0x80:
        return False
    header = quic.parse_long_header(payload)
    return header is not None and header.packet_type is quic.PacketType.INITIAL \
        and quic_initial.decrypt_initial(payload, header) is not None


def observe_quic(packets: Iterable[Packet], *, ports: Iterable[int] = QUIC_PORTS) -> list[QuicFlow]:
    """Every QUIC flow of `packets`, closed, in the order they closed."""
    flows: list[QuicFlow] = []
    observer = QuicObserver(flows.append, ports=ports)
    for pkt in packets:
        observer.feed(pkt)
    observer.close()
    return flows


# --------------------------------------------------------------------------- residual blocking

REPLY_WINDOW_S = 3.0
"""A client datagram counts as answered when the server sends anything on its flow
within this long after it."""


@dataclass(slots=True)
class ResidualBlock:
    """What followed an unanswered Initial on the same (client, server, server port).

    Read from the client's side: datagrams the client sent after the trigger, on
    any source port, and whether each drew anything from the server.  (A capture
    taken at the server shows a drop as a missing datagram instead: the
    analysis must know the vantage before using this.)
    """

    three_tuple: tuple[str, str, int]
    trigger: QuicConnection
    unanswered: list[Packet] = field(default_factory=list)
    """Later client datagrams with no server reply within `REPLY_WINDOW_S`, before the
    first answered one."""
    first_answered: Packet | None = None
    """The first later client datagram that drew a reply: the block was over by then."""

    @property
    def blocked_for(self) -> float:
        """Seconds from the trigger to the last datagram seen unanswered (a lower bound)."""
        return self.unanswered[-1].ts - self.trigger.first_ts if self.unanswered else 0.0

    @property
    def lifted_within(self) -> float | None:
        """Seconds from the trigger to the first answered datagram (an upper bound), if any."""
        return None if self.first_answered is None else self.first_answered.ts - self.trigger.first_ts


def _answered(flow: QuicFlow, pkt: Packet) -> bool:
    return any(pkt.ts < d.packet.ts <= pkt.ts + REPLY_WINDOW_S for d in flow.server_datagrams)


def residual_blocks(flows: Iterable[QuicFlow]) -> list[ResidualBlock]:
    """For every connection whose Initials got no answer, the later client datagrams on
    its (client, server, server port) and which of them were answered."""
    by_tuple: dict[tuple[str, str, int], list[QuicFlow]] = {}
    for flow in flows:
        by_tuple.setdefault(flow.three_tuple, []).append(flow)
    blocks: list[ResidualBlock] = []
    for key, group in by_tuple.items():
        later: list[tuple[float, int, Packet, QuicFlow]] = sorted(
            ((d.packet.ts, d.packet.frame, d.packet, flow) for flow in group for d in flow.client_datagrams),
            key=lambda item: (item[0], item[1]))
        for flow in group:
            for conn in flow.connections:
                if conn.first_answer is not None or not conn.initials:
                    continue
                trigger_ids = {id(p) for p in conn.initials}
                block = ResidualBlock(key, conn)
                for ts, _frame, pkt, owner in later:
                    if ts <= conn.first_ts or id(pkt) in trigger_ids:
                        continue
                    if _answered(owner, pkt):
                        block.first_answered = pkt
                        break
                    block.unanswered.append(pkt)
                blocks.append(block)
    return blocks
