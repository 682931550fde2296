"""Evidence: the packets a finding rests on, and why each one looks injected.

An injected packet is told apart from the server's own by comparing its IP
and TCP fields with the server's genuine packets in the same flow (its
SYN-ACK) or, for DNS, with the resolver's answers to control names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fingerprint.capture.packet import ACK, Packet

if TYPE_CHECKING:
    from fingerprint.analysis.observe import TcpFlow
    from fingerprint.analysis.outcome import FlowOutcome

TTL_TOLERANCE = 2
"""Route changes move a server's TTL by a hop or two; more than that is another sender."""

INITIAL_TTLS = (32, 64, 128, 255)


def initial_ttl(ttl: int) -> int:
    """The smallest common initial TTL at or above a received TTL."""
    return next((t for t in INITIAL_TTLS if ttl <= t), 255)


@dataclass(slots=True)
class Baseline:
    """Fields of packets known to come from the genuine peer."""

    ttls: list[int] = field(default_factory=list)
    df: bool | None = None
    window: int | None = None

    def add(self, pkt: Packet, with_window: bool = False) -> None:
        if pkt.ttl not in self.ttls:  # distinct values are enough to compare with
            self.ttls.append(pkt.ttl)
        if pkt.version == 4 and self.df is None:
            self.df = pkt.df
        if with_window and self.window is None:
            self.window = pkt.window

    def anomalies(self, pkt: Packet) -> list[str]:
        """Reasons why `pkt` does not look like it came from the genuine peer."""
        reasons: list[str] = []
        ttls = self.ttls
        if ttls:
            ttl = pkt.ttl
            nearest = ttls[0] if len(ttls) == 1 else min(ttls, key=lambda t: abs(t - ttl))
            if abs(nearest - ttl) > TTL_TOLERANCE:
                reasons.append(f"TTL {pkt.ttl} vs server {nearest}")
        if self.df is not None and pkt.version == 4 and pkt.df != self.df:
            reasons.append(f"DF {'set' if pkt.df else 'unset'} vs server {'set' if self.df else 'unset'}")
        return reasons


@dataclass(slots=True)
class EvidencePacket:
    packet: Packet
    role: str
    """What the packet is in the story: trigger, injected, response, icmp, genuine."""
    reasons: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    """Values signatures match on (ip.ttl, tcp.flags, dns.answer, ...)."""

    @property
    def injected(self) -> bool:
        return self.role == "injected"

    def text(self) -> str:
        line = f"{self.role}: {self.packet.describe()}"
        extra = self.fields.get("summary")
        if extra:
            line += f" {extra}"
        if self.reasons:
            line += " (" + "; ".join(self.reasons) + ")"
        return line

    def to_json(self) -> dict[str, Any]:
        p = self.packet
        out: dict[str, Any] = {"frame": p.frame, "role": self.role, "time": round(p.ts, 6),
                               "src": p.src, "dst": p.dst, "ip_ttl": p.ttl}
        if p.ip_id is not None:
            out["ip_id"] = p.ip_id
            out["df"] = p.df
        if p.sport or p.dport:
            out["sport"], out["dport"] = p.sport, p.dport
        if p.is_tcp:
            out.update(tcp_flags=p.flags, seq=p.seq, ack=p.ack, window=p.window)
        if p.is_icmp:
            out.update(icmp_type=p.icmp_type, icmp_code=p.icmp_code)
        if p.payload and not p.is_icmp:
            out["payload_len"] = len(p.payload)
            out["payload_hex"] = p.payload[:64].hex()
        if self.reasons:
            out["reasons"] = list(self.reasons)
        for key in ("dns.answer", "dns.rcode", "dns.flags", "timing.delay_ms"):
            if key in self.fields:
                out[key.replace(".", "_")] = self.fields[key]
        return out


def packet_fields(pkt: Packet, trigger: Packet | None) -> dict[str, Any]:
    """The generic per-packet fields signatures can match."""
    fields: dict[str, Any] = {
        "ip.ttl": pkt.ttl,
        "ip.initial_ttl": initial_ttl(pkt.ttl),
        "ip.df": pkt.df,
        "ip.version": pkt.version,
    }
    if pkt.ip_id is not None:
        fields["ip.id"] = pkt.ip_id
    if trigger is not None:
        fields["timing.delay_ms"] = round((pkt.ts - trigger.ts) * 1000.0, 3)
        fields["ip.ttl_minus_trigger"] = pkt.ttl - trigger.ttl
    if pkt.is_tcp:
        fields.update({
            "tcp.flags": pkt.flags,
            "tcp.window": pkt.window,
            "tcp.seq": pkt.seq,
            "tcp.ack": pkt.ack,
            "tcp.payload": pkt.payload,
            "tcp.payload_len": len(pkt.payload),
        })
        if trigger is not None and trigger.is_tcp and trigger.tcp_flags & ACK:
            # Offset from the sequence number the client expects next (the trigger's ACK):
            # injectors that do not track the flow exactly are told apart by it (GFW type-2
            # RSTs use X, X+1460, X+4380).
            fields["tcp.seq_delta"] = (pkt.seq - trigger.ack) & 0xFFFFFFFF
    if pkt.is_icmp:
        fields["icmp.type"] = pkt.icmp_type
        fields["icmp.code"] = pkt.icmp_code
    return fields


def flow_evidence(flow: TcpFlow, outcome: FlowOutcome) -> list[EvidencePacket]:
    """A TCP finding's packets: the server's SYN-ACK (baseline), the trigger, the injected
    and the decisive packets."""
    ev: list[EvidencePacket] = []
    if flow.synack is not None:
        ev.append(EvidencePacket(flow.synack, "genuine", ["server's SYN-ACK (baseline)"],
                                 packet_fields(flow.synack, None)))
    if flow.trigger is not None:
        ev.append(EvidencePacket(flow.trigger, "trigger", [], packet_fields(flow.trigger, None)))
    injected_ids = {id(e.packet) for e in outcome.injected}
    ev.extend(outcome.injected)
    for pkt in outcome.decisive:
        if id(pkt) not in injected_ids:
            ev.append(EvidencePacket(pkt, "response", [], packet_fields(pkt, flow.trigger)))
    return ev
