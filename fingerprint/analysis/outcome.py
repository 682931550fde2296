"""What a closed TCP flow came to: its `Outcome`, decided once when it closes.

The outcome is read by every rule family (tls, http, ip), by the flow store
(which packs it as a number) and by the OONI builder (which maps it to a
failure string), so it is a closed vocabulary here rather than strings written
in each of them.  A flow captured at its server (`capture_end_of`, or `--vantage`)
is judged by what its remote client suffered (`remote_client_outcome`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fingerprint.analysis.evidence import Baseline, EvidencePacket, packet_fields
from fingerprint.analysis.observe import TcpFlow
from fingerprint.capture.packet import ACK, FIN, RST, Packet
from fingerprint.protocols import http as http_proto
from fingerprint.protocols import tls as tls_proto

SILENCE_AFTER_S = 2.0
"""Seconds of silence after a trigger before it counts as dropped (when the client did not give up)."""


class Outcome(StrEnum):
    """How a flow ended.  The order is the flow store's packed number: append only."""

    TLS_OK = "tls_ok"
    """The server's TLS flight with a ServerHello."""
    ALERT = "alert"
    """A TLS alert instead of a ServerHello."""
    TLS_OTHER = "tls_other"
    """TLS records, but neither a ServerHello nor an alert."""
    HTTP_RESPONSE = "http_response"
    RESET = "reset"
    """An RST after the trigger (or injected RSTs after a genuine answer)."""
    FIN = "fin"
    PLAINTEXT = "plaintext"
    """Data that is not the protocol asked for (an injected page, or injected text)."""
    SILENCE = "silence"
    """Nothing after the trigger for `SILENCE_AFTER_S`, or the client gave up."""
    PENDING = "pending"
    """The capture ended before an answer was due."""
    TIME_EXCEEDED = "time_exceeded"
    """A TTL-limited packet expired on the path (ICMP/ICMPv6 time exceeded)."""
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_RESET = "connect_reset"
    CONNECT_ICMP = "connect_icmp"
    """The SYN drew an ICMP/ICMPv6 destination unreachable."""
    NO_TRIGGER = "no_trigger"
    """Connected, but no ClientHello or request was sent."""
    SERVED = "served"
    """Seen at the server: the request arrived and nothing forged in the client's name
    tore the connection down (`remote_client_outcome`)."""
    UNCAPTURED = "uncaptured"
    """The client acknowledged the start of the server's answer, which the capture does
    not hold (capture loss: `answer_lost_from_capture`); what the answer said is unknown."""
    CLOSED_IDLE = "closed_idle"
    """The server closed the connection, idle since its handshake, before the trigger
    reached it: its FIN or RST does not acknowledge the trigger (`_closed_while_idle`).
    The trigger was never tested."""
    MIDSTREAM = "midstream"
    """Neither SYN nor SYN-ACK captured, nor a trigger: packets of a connection opened
    before the capture began, or one idle past `observe.TCP_IDLE_S` (a keep-alive probe,
    the close of an idle socket).  No connection attempt, so no connect failure."""

    @property
    def is_connect_failure(self) -> bool:
        return self in CONNECT_FAILURES


CONNECT_FAILURES = frozenset({Outcome.CONNECT_TIMEOUT, Outcome.CONNECT_RESET, Outcome.CONNECT_ICMP})
WORKING_TLS = frozenset({Outcome.TLS_OK, Outcome.ALERT, Outcome.TLS_OTHER})
"""The TLS server answered as a TLS server (an alert is still the server's own answer)."""
ANSWERED_OK = frozenset({Outcome.SERVED, Outcome.UNCAPTURED})
"""Working for a TLS or an HTTP trigger alike, the answer unread: seen at the server, the
request was served; or the client received an answer the capture lost."""
WORKING = WORKING_TLS | {Outcome.HTTP_RESPONSE} | ANSWERED_OK
FAILED = frozenset({Outcome.RESET, Outcome.FIN, Outcome.PLAINTEXT, Outcome.SILENCE})
"""Outcomes a trigger rule can call censorship."""
UNDECIDED = frozenset({Outcome.PENDING, Outcome.NO_TRIGGER, Outcome.TIME_EXCEEDED,
                       Outcome.MIDSTREAM, Outcome.CLOSED_IDLE})
"""Outcomes that say nothing about the trigger (not counted towards a majority)."""


@dataclass(slots=True)
class FlowOutcome:
    kind: Outcome
    decisive: list[Packet] = field(default_factory=list)
    injected: list[EvidencePacket] = field(default_factory=list)
    flight: tls_proto.ServerFlight | None = None
    response: http_proto.HttpResponse | None = None


def _server_baseline(flow: TcpFlow) -> Baseline:
    baseline = Baseline()
    if flow.synack is not None:
        baseline.add(flow.synack, with_window=True)
    return baseline


# Members as module globals: flow_outcome runs once per flow, and an enum member looked
# up on its class is ten times slower than a global name (measured, Python 3.11).
_ALERT = Outcome.ALERT
_CLOSED_IDLE = Outcome.CLOSED_IDLE
_CONNECT_ICMP = Outcome.CONNECT_ICMP
_CONNECT_RESET = Outcome.CONNECT_RESET
_CONNECT_TIMEOUT = Outcome.CONNECT_TIMEOUT
_FIN = Outcome.FIN
_HTTP_RESPONSE = Outcome.HTTP_RESPONSE
_MIDSTREAM = Outcome.MIDSTREAM
_NO_TRIGGER = Outcome.NO_TRIGGER
_PENDING = Outcome.PENDING
_PLAINTEXT = Outcome.PLAINTEXT
_RESET = Outcome.RESET
_SILENCE = Outcome.SILENCE
_SERVED = Outcome.SERVED
_TIME_EXCEEDED = Outcome.TIME_EXCEEDED
_TLS_OK = Outcome.TLS_OK
_TLS_OTHER = Outcome.TLS_OTHER
_UNCAPTURED = Outcome.UNCAPTURED

UNCAPTURED_DETAIL = ("the server's answer is missing from the capture (capture loss); the "
                     "client acknowledged it")
"""Said of a test whose attempts mostly came to `Outcome.UNCAPTURED`."""


UNROUTED_TTLS = (64, 128, 255)
"""Initial TTLs of common stacks: a packet still carrying one was captured on the host
that sent it (no router has decremented it)."""


def capture_end_of(flow: TcpFlow) -> str | None:
    """Which end of the connection the capture was taken at, from the handshake.

    At the server, SYNs arrive from outside (their TTL decremented by the path) while
    the SYN-ACKs leave with an initial TTL; at the client it is the other way round.
    None when the handshake does not say (no SYN-ACK, or both or neither routed).
    """
    if flow.syn is None or flow.synack is None:
        return None
    syn_routed = flow.syn.ttl not in UNROUTED_TTLS
    synack_routed = flow.synack.ttl not in UNROUTED_TTLS
    if syn_routed and not synack_routed:
        return "server"
    if synack_routed and not syn_routed:
        return "client"
    return None


def flow_outcome(flow: TcpFlow, capture_end: float, vantage: str | None = None) -> FlowOutcome:
    """What happened to one attempt.  `vantage` (client/server, `--vantage`) overrides
    the capture end the handshake suggests."""
    if flow.synack is not None and (vantage or capture_end_of(flow)) == "server":
        return remote_client_outcome(flow)
    if flow.synack is None and flow.syn is None and flow.trigger is None:
        # A browser keeps idle connections for minutes (TCP keep-alive probes, then an
        # RST or FIN), and a capture may start after connections opened: what is left
        # of them is no attempt to connect, whatever answers it (a NAT that forgot the
        # connection resets a keep-alive probe).
        return FlowOutcome(_MIDSTREAM)
    if flow.synack is None:
        unreachable = [p for p in flow.icmp if p.is_unreachable]
        if unreachable:
            return FlowOutcome(_CONNECT_ICMP, unreachable[:1])
        if flow.handshake_rst is not None:
            return FlowOutcome(_CONNECT_RESET, [flow.handshake_rst])
        if flow.trigger is None:
            exceeded = [p for p in flow.icmp if p.is_time_exceeded]
            if exceeded:
                return FlowOutcome(_TIME_EXCEEDED, exceeded[:1])
            sent = flow.syn.ts if flow.syn is not None else flow.first_ts
            if capture_end - sent < SILENCE_AFTER_S:
                # The capture ended before an answer was due (an interrupted capture).
                return FlowOutcome(_PENDING)
            return FlowOutcome(_CONNECT_TIMEOUT)
    if flow.trigger is None:
        return FlowOutcome(_NO_TRIGGER)
    trigger = flow.trigger
    exceeded = [p for p in flow.icmp if p.is_time_exceeded and p.quoted is not None
                and p.quoted.seq == trigger.seq]
    baseline = _server_baseline(flow)
    decisive: list[Packet] = []
    injected: list[EvidencePacket] = []
    own_closes: list[Packet] = []
    first_kind: Outcome | None = None
    flight = flow.flight
    response = flow.response
    for pkt in flow.server_packets:
        if pkt.ts < trigger.ts:
            continue
        reasons = baseline.anomalies(pkt)
        is_close = bool(pkt.tcp_flags & (RST | FIN))
        if reasons and (is_close or pkt.payload):
            fields = packet_fields(pkt, trigger)
            injected.append(EvidencePacket(pkt, "injected", reasons, fields))
            if pkt.tcp_flags & RST and _went_on_after(flow, pkt):
                continue  # a forged RST the client's stack did not take
        if first_kind is None and (is_close or pkt.payload):
            if is_close and not pkt.payload and _closed_while_idle(pkt, flow, trigger, reasons):
                return FlowOutcome(_CLOSED_IDLE, [pkt], injected, flight, response)
            if pkt.tcp_flags & FIN and not pkt.tcp_flags & RST and not pkt.payload \
                    and (_overtook_lost_data(pkt, flow.server_packets)
                         or _servers_own_close(pkt, flow, trigger, reasons)):
                own_closes.append(pkt)
                continue
            decisive.append(pkt)
            if pkt.tcp_flags & RST:
                first_kind = _RESET
            elif pkt.payload:
                first_kind = _PLAINTEXT  # "data": refined below
            else:
                first_kind = _FIN
        elif first_kind is not None and is_close and len(decisive) < 8:
            decisive.append(pkt)
    if first_kind is _PLAINTEXT:
        kind: Outcome
        if flight is not None and flight.is_tls:
            kind = _TLS_OK if flight.server_hello else (
                _ALERT if flight.alert else _TLS_OTHER)
            if kind is not _TLS_OK and injected:
                kind = _PLAINTEXT
        elif response is not None and flow.client_hello is None:
            # An HTTP response to a ClientHello is no TLS server's answer: plaintext
            # (an injected HTTP blockpage on port 443, Iran's 403 with its iframe).
            kind = _HTTP_RESPONSE
        elif not injected and answer_lost_from_capture(flow):
            # Only segments past a gap at the start of the server's stream were captured,
            # and the client acknowledged the gap: the server's answer, its start lost.
            kind = _UNCAPTURED
        else:
            kind = _PLAINTEXT
        injected_resets = [e.packet for e in injected if e.packet.tcp_flags & RST
                           and not _went_on_after(flow, e.packet)]
        if kind is _HTTP_RESPONSE and any(e.packet is decisive[0] for e in injected):
            # The response itself is forged (a blockpage), its RST only closes the
            # connection behind it: the page is the censor's answer, not the reset.
            return FlowOutcome(kind, decisive, injected, flight, response)
        if kind in WORKING and injected_resets:
            # An on-path injector near a fast server can lose the race: the genuine
            # answer arrives first, the forged RSTs still tear the connection down.
            return FlowOutcome(_RESET, injected_resets[:8], injected, flight, response)
        return FlowOutcome(kind, decisive, injected, flight, response)
    if first_kind is not None:
        return FlowOutcome(first_kind, decisive, injected, flight, response)
    if exceeded:
        return FlowOutcome(_TIME_EXCEEDED, exceeded[:1])
    if answer_lost_from_capture(flow):
        # No silence: the client's stack received the answer, the capture did not.
        return FlowOutcome(_UNCAPTURED, own_closes[:1])
    waited = (flow.client_closed_ts or capture_end) - trigger.ts
    if flow.client_closed_ts is not None or waited >= SILENCE_AFTER_S:
        return FlowOutcome(_SILENCE)
    return FlowOutcome(_PENDING)


def _went_on_after(flow: TcpFlow, reset: Packet) -> bool:
    """The connection went on after a forged RST reached the client: the client sent new
    data after it and the server answered with data after that.  The client's stack did
    not take the RST (out of its window: RFC 5961 section 3 drops it or answers a challenge
    ACK), so it blocked nothing.  A client that sent on but met only the server's RST (the
    injector reset the server's side too) was blocked all the same."""
    sent = flow.client_data_last_ts
    answered = flow.server_data_last_ts
    return sent is not None and answered is not None and reset.ts < sent < answered


def remote_client_outcome(flow: TcpFlow) -> FlowOutcome:
    """An attempt seen at the server: what did the remote client suffer?

    The server's own packets are what the server did and are no evidence of
    censorship.  What an on-path injector sends towards the server claims to come
    from the client; it is told apart by fields unlike the client's own packets (its
    SYN, its request): a TTL more than a couple of hops off, another DF.  Such a RST
    (or FIN) means the injector tore the connection down, and sent the same to the
    client (Tripwire: Sundara Raman et al. 2020, Merino et al. 2021).  Without one,
    the request reached the server: `served`.
    """
    if flow.trigger is None:
        return FlowOutcome(_NO_TRIGGER)
    baseline = Baseline()
    if flow.syn is not None:
        baseline.add(flow.syn)
    if flow.syn is None or abs(flow.trigger.ttl - flow.syn.ttl) <= 2:
        baseline.add(flow.trigger)
    injected: list[EvidencePacket] = []
    for pkt in flow.client_closes:
        reasons = [r.replace("vs server", "vs client") for r in baseline.anomalies(pkt)]
        if reasons:
            injected.append(EvidencePacket(pkt, "injected", reasons,
                                           packet_fields(pkt, flow.trigger)))
    if injected:
        packets = [e.packet for e in injected]
        kind = _RESET if any(p.tcp_flags & RST for p in packets) else _FIN
        return FlowOutcome(kind, packets[:8], injected, flow.flight, flow.response)
    return FlowOutcome(_SERVED, [], [], flow.flight, flow.response)


def answer_lost_from_capture(flow: TcpFlow) -> bool:
    """The client acknowledged server bytes from the start of the server's answer that
    the capture does not hold.

    A cumulative ACK covers only bytes the client's stack received in order, so data
    acknowledged past what was recorded reached the client and was lost by the capture
    (a capture tool drops packets under load; tcpdump counts them "dropped by kernel").
    Such an attempt was answered, not dropped: its silence in the capture is no
    evidence.  A bare FIN takes one sequence number: an ACK one past the start of the
    answer acknowledges a close, not data.  Two SYN-ACKs with different sequence numbers
    (a forged one raced the server's) leave the start unknown: nothing is inferred.
    """
    if flow.synack is None or flow.client_ack is None or flow.server_data \
            or flow.synack_conflicts:
        return False
    ahead = (flow.client_ack - flow.synack.seq - 1) & 0xFFFFFFFF
    return 2 <= ahead < 1 << 31


IDLE_CLOSE_S = 5.0
"""A bare FIN this long after the trigger, with nothing from the server before it, is
the server closing an idle connection (servers time out idle clients after seconds to
a minute); an injector answers the trigger within a round trip or two."""


def _continues_server_ip_id(pkt: Packet, flow: TcpFlow) -> bool:
    """The packet's IP ID follows the server's own (a small step after its last one).
    True when the server's IDs give nothing to compare with (zero or absent)."""
    earlier = [p for p in (flow.synack, *flow.server_packets)
               if p is not None and p.ts < pkt.ts and p.ip_id]
    if not earlier or pkt.ip_id is None:
        return True
    last = earlier[-1].ip_id
    assert last is not None
    return 0 < (pkt.ip_id - last) & 0xFFFF <= 256


def _servers_own_close(fin: Packet, flow: TcpFlow, trigger: Packet, reasons: list[str]) -> bool:
    """A bare server FIN that is the server's ordinary close, not a censor's: its TTL, DF
    and IP ID continue the server's own packets, and it comes after the client's own
    FIN (the client ended the connection) or after a long silence (an idle timeout)."""
    if reasons or not _continues_server_ip_id(fin, flow):
        return False
    if flow.synack is not None:
        # Past the next byte the server owed: it sent data the capture did not record,
        # and this FIN closes it; an injected FIN takes the next expected number.
        owed = (flow.synack.seq + 1 + sum(len(p.payload) for p in flow.server_packets
                                          if p.ts < fin.ts)) & 0xFFFFFFFF
        if 0 < (fin.seq - owed) & 0xFFFFFFFF < 1 << 31:
            return True
    after_client = flow.client_closed_ts is not None and flow.client_closed_ts < fin.ts
    idle = fin.ts - trigger.ts >= IDLE_CLOSE_S and not any(
        p.payload for p in flow.server_packets if p.ts < fin.ts)
    return after_client or idle


def _closed_while_idle(close: Packet, flow: TcpFlow, trigger: Packet, reasons: list[str]) -> bool:
    """A server FIN or RST that crossed the trigger: the server closed a connection left
    idle since its handshake, before the trigger reached it.

    Browsers open connections ahead of use (Chrome's and Firefox's preconnect) and
    servers close idle ones after seconds (an idle or handshake timeout); a ClientHello
    sent as the server's close is on its way meets that close, then the closed socket's
    RST.  The close acknowledges only the bytes before the trigger (an on-path injector
    reacts to the trigger it saw), carries the server's own TTL, DF and IP ID, and the
    connection was idle for `IDLE_CLOSE_S` before the trigger."""
    synack = flow.synack
    if reasons or synack is None or not close.tcp_flags & ACK or close.ack != trigger.seq:
        return False
    if trigger.ts - synack.ts < IDLE_CLOSE_S:
        return False
    return _continues_server_ip_id(close, flow)


def _overtook_lost_data(fin: Packet, server_packets: list[Packet]) -> bool:
    """A server FIN that arrived before data it follows: that data was lost and comes
    later, retransmitted, with a lower sequence number.  An injected FIN takes the next
    expected sequence number, so no later data sits below it."""
    return any(q.payload and q.ts > fin.ts and 0 < (fin.seq - q.seq) & 0xFFFFFFFF < 1 << 31
               for q in server_packets)
