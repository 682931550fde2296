"""Closed TCP flows as the verdicts keep them: a few whole, most packed into bytes.

A big capture holds up to `index.MAX_FULL_ITEMS` attempts per target.  A
finding cites only a few of them (the first of each outcome, the first with a
certificate or an HTTP response); the others count towards the majority and
appear in OONI measurements by their times and header fields.  Those are packed
here into one `bytes` record each (about 200 bytes with its references instead
of 3 KB of packet objects), so memory per target stays small however long the
capture is.  Iterating a `FlowGroup` rebuilds each packed flow as a `TcpFlow`
with header-only packets and its outcome attached; nothing keeps the rebuilt
objects, so the peak is one group at a time.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

from fingerprint.analysis.evidence import EvidencePacket
from fingerprint.analysis.observe import CLOSED_STREAM, TcpFlow
from fingerprint.analysis.outcome import FlowOutcome, Outcome
from fingerprint.capture.packet import PROTO_TCP, Packet

KINDS = tuple(Outcome)
_KIND_INDEX = {kind: n for n, kind in enumerate(KINDS)}

# client port, server port, first/last/closed/client-closed/server-data first/last times,
# SYN count, SYN-ACK conflicts, trigger sends, server packet count, server bytes,
# trigger length, which packets are present, number of decisive packets, outcome kind.
_FLOW = struct.Struct("<HHddddddIIIIQIBBB")
# time, frame, TTL, IP ID, bits (IP ID present, DF, truncated), TCP flags, protocol.
_PACKET = struct.Struct("<dIBHBBB")
_SYN, _SYNACK, _RST, _TRIGGER = 1, 2, 4, 8
_NONE = math.nan


def _opt(value: float | None) -> float:
    return _NONE if value is None else value


def _unopt(value: float) -> float | None:
    return None if value != value else value  # NaN stands for None


class PackedFlow:
    """One closed flow no finding cites, packed (see the module docstring)."""

    __slots__ = ("capture", "client", "client_hello", "data", "flight", "http_request",
                 "injected", "response", "server_data")

    def __init__(self, data: bytes, flow: TcpFlow, capture: str | None,
                 injected: list[EvidencePacket] | None) -> None:
        self.data = data
        self.client = flow.client
        self.capture = capture
        self.client_hello = flow.client_hello
        self.http_request = flow.http_request
        self.flight = flow.flight
        self.response = flow.response
        self.server_data = flow.server_data
        self.injected = injected


def pack(flow: TcpFlow, outcome: FlowOutcome) -> PackedFlow | None:
    """The packed form of a closed flow, or None when it holds what a record does not
    (ICMP errors, packets from several capture files, an outcome packet not from the server)."""
    kind = _KIND_INDEX.get(outcome.kind)
    if kind is None or flow.icmp or len(outcome.decisive) > 255:
        return None
    if outcome.flight is not flow.flight or outcome.response not in (None, flow.response):
        return None
    present = 0
    packets: list[Packet] = []
    if flow.syn is not None:
        present |= _SYN
        packets.append(flow.syn)
    if flow.synack is not None:
        present |= _SYNACK
        packets.append(flow.synack)
    if flow.handshake_rst is not None:
        present |= _RST
        packets.append(flow.handshake_rst)
    if flow.trigger is not None:
        present |= _TRIGGER
        packets.append(flow.trigger)
    server = flow.server
    for pkt in outcome.decisive:
        if pkt.src != server or pkt.proto != PROTO_TCP:
            return None
        packets.append(pkt)
    capture = packets[0].capture if packets else None
    parts = [_FLOW.pack(flow.client_port, flow.server_port, flow.first_ts, flow.last_ts,
                        flow.closed_ts, _opt(flow.client_closed_ts),
                        _opt(flow.server_data_first_ts), _opt(flow.server_data_last_ts),
                        flow.syn_count, flow.synack_conflicts, flow.trigger_sends,
                        flow.server_packet_count, flow.server_bytes, flow.trigger_len, present,
                        len(outcome.decisive), kind)]
    pack_packet = _PACKET.pack
    for pkt in packets:
        if pkt.capture != capture:
            return None  # packets from several capture files: keep the flow as it is
        ip_id = pkt.ip_id
        bits = (2 if pkt.df else 0) | (4 if pkt.truncated else 0)
        if ip_id is not None:
            bits |= 1
        parts.append(pack_packet(pkt.ts, pkt.frame, pkt.ttl, ip_id or 0, bits, pkt.tcp_flags,
                                 pkt.proto))
    injected = [EvidencePacket(_header(e.packet), e.role, e.reasons, {})
                for e in outcome.injected[:1]] or None
    return PackedFlow(b"".join(parts), flow, capture, injected)


def _header(pkt: Packet) -> Packet:
    return Packet(pkt.frame, pkt.ts, pkt.version, pkt.src, pkt.dst, pkt.ttl, pkt.ip_id, pkt.df,
                  pkt.proto, 0, 0, 0, pkt.tcp_flags, 0, 0, 0, b"", pkt.icmp_type, pkt.icmp_code,
                  None, None, pkt.truncated, pkt.capture)


def unpack(record: PackedFlow, server: str) -> TcpFlow:
    """A `TcpFlow` with header-only packets and its outcome (`flow.outcome`) set."""
    data = record.data
    (client_port, server_port, first_ts, last_ts, closed_ts, client_closed_ts, data_first,
     data_last, syn_count, synack_conflicts, trigger_sends, server_packet_count, server_bytes,
     trigger_len, present, n_decisive, kind) = _FLOW.unpack_from(data, 0)
    client = record.client
    capture = record.capture
    version = 6 if ":" in server else 4
    offset = _FLOW.size

    def packet(src: str, dst: str) -> Packet:
        nonlocal offset
        ts, frame, ttl, ip_id, bits, flags, proto = _PACKET.unpack_from(data, offset)
        offset += _PACKET.size
        return Packet(frame, ts, version, src, dst, ttl, ip_id if bits & 1 else None,
                      bool(bits & 2), proto, 0, 0, 0, flags, 0, 0, 0, b"", None, None, None,
                      None, bool(bits & 4), capture)

    syn = packet(client, server) if present & _SYN else None
    synack = packet(server, client) if present & _SYNACK else None
    rst = packet(server, client) if present & _RST else None
    trigger = packet(client, server) if present & _TRIGGER else None
    decisive = [packet(server, client) for _ in range(n_decisive)]
    flow = TcpFlow(client, client_port, server, server_port, first_ts, syn=syn,
                   syn_count=syn_count, synack=synack, handshake_rst=rst,
                   synack_conflicts=synack_conflicts, trigger=trigger,
                   trigger_sends=trigger_sends, client_closed_ts=_unopt(client_closed_ts),
                   server_packet_count=server_packet_count, server_bytes=server_bytes,
                   server_data_first_ts=_unopt(data_first), server_data_last_ts=_unopt(data_last),
                   last_ts=last_ts, client_hello=record.client_hello,
                   http_request=record.http_request, server_data=record.server_data,
                   flight=record.flight, response=record.response, trigger_len=trigger_len,
                   closed_ts=closed_ts, compact=True)
    flow.client_stream = flow.server_stream = CLOSED_STREAM
    flow.outcome = FlowOutcome(KINDS[kind], decisive, list(record.injected or ()),
                               record.flight, record.response)
    return flow


class FlowGroup:
    """The kept flows of one target in the order they closed; most of them packed."""

    __slots__ = ("items", "server")

    def __init__(self, server: str) -> None:
        self.server = server
        self.items: list[TcpFlow | PackedFlow] = []

    def append(self, flow: TcpFlow) -> None:
        self.items.append(flow)

    def pack_last(self, outcome: FlowOutcome) -> bool:
        """Pack the flow appended last (its outcome decided); False when it cannot be."""
        flow = self.items[-1]
        assert isinstance(flow, TcpFlow)
        record = pack(flow, outcome)
        if record is None:
            return False
        self.items[-1] = record
        return True

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[TcpFlow]:
        server = self.server
        for item in self.items:
            yield item if isinstance(item, TcpFlow) else unpack(item, server)
