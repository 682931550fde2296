"""Forged DNS answers and the in-path DNS base (shared by the DNS behaviours)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rrset

from fingerprint.lab import topology
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict, pick

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext


def reply_wire(query: dns.message.Message, *, flags: int, rcode: int = dns.rcode.NOERROR,
               addresses: Sequence[str] = (), dns_ttl: int = 300) -> bytes:
    """A response to `query` with exactly these header flags (rcode in the low bits)."""
    reply = dns.message.make_response(query)
    if addresses:
        reply.answer.append(dns.rrset.from_text_list(query.question[0].name, dns_ttl, "IN", "A",
                                                     list(addresses)))
    reply.flags = flags & 0xFFF0
    reply.set_rcode(dns.rcode.Rcode(rcode))
    return reply.to_wire()


def send_reply(ctx: CensorContext, trigger: Packet, wire: bytes, fields: Mapping[str, Any]) -> None:
    """Send `wire` to the querier as if from the queried address, with these IP fields."""
    # Imported here, as in `_tcp.build`: scapy is for the engine that sends, not for
    # every `lab` command that loads the censors to validate a scenario.
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    packet = IP(src=trigger.dst, dst=trigger.src,
                ttl=pick(fields.get("ttl", 64), "ttl", copied=trigger.ttl),
                id=pick(fields.get("ip_id", "random"), "ip_id"),
                flags="DF" if fields.get("df", False) else 0
                ) / UDP(sport=trigger.dport, dport=trigger.sport) / Raw(wire)
    ctx.send("client", packet)


RESOLVER_LIKE: dict[str, Any] = {"flags": 0x8180, "dns_ttl": 300, "ttl": 61,
                                 "ip_id": "random", "df": True, "any_destination": False,
                                 "delay_ms": 25}
"""The lab resolver's own reply as it passes the censor: IP TTL 61 (64 minus r4,
r3 and the censor), DF, 25 ms late; so the tampered answer looks like the
resolver lying, not like an injection (the probe compares these fields).
`any_destination: false` limits the tampering to queries sent to the lab's
resolver, as an ISP resolver that lies would; a query to an address that runs
no resolver then stays unanswered."""


class InPathDns(Behaviour):
    """Drops matching queries and answers (or not) in the resolver's place."""

    queues = frozenset({"dns"})
    defaults: ClassVar[Mapping[str, Any]] = dict(RESOLVER_LIKE)

    def answer(self, query: dns.message.Message) -> bytes | None:
        raise NotImplementedError

    def on_dns(self, ctx: CensorContext, packet: Packet, query: dns.message.Message
               ) -> Verdict | None:
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN or not self.matches_name(
                question.name.to_text()):
            return None
        if not self.options.get("any_destination") and packet.dst != topology.RESOLVER_ADDRESS:
            return None
        wire = self.answer(query)
        if wire is not None:
            ctx.later(float(self.options.get("delay_ms", 0)) / 1000,
                         lambda: send_reply(ctx, packet, wire, self.options))
        return Verdict(drop=True)
