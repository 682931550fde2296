"""Injected TCP segments described by data (shared by the RST, FIN and HTTP
behaviours).

A segment spec is a mapping: `to` (client or server), `flags` (scapy letters,
e.g. "R", "RA", "FPA"), `seq` (absolute; default: the receiver's next expected
sequence number) plus `seq_offset`, `ack` (absolute; default: the next
expected one), `ttl`, `ip_id`, `window` (base.FieldSpec), `df` (bool),
`payload` (str).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fingerprint.lab._system import LabError
from fingerprint.lab.censors._wire import SYN, Packet
from fingerprint.lab.censors.base import pick

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext

_KEYS = {"to", "flags", "seq", "seq_offset", "ack", "ttl", "ip_id", "window", "df", "payload"}


def check_specs(owner: str, specs: Any) -> list[Mapping[str, Any]]:
    if not isinstance(specs, list) or not all(isinstance(s, Mapping) for s in specs):
        raise LabError(f"{owner}: packets must be a list of mappings")
    for spec in specs:
        unknown = set(spec) - _KEYS
        if unknown:
            raise LabError(f"{owner}: unknown packet field {sorted(unknown)[0]!r}")
        if spec.get("to") not in ("client", "server"):
            raise LabError(f"{owner}: packet 'to' must be client or server")
    return list(specs)


def build(spec: Mapping[str, Any], trigger: Packet, index: int) -> tuple[str, Any]:
    """(direction, scapy IP packet) for one spec, relative to the trigger segment."""
    # scapy is imported where packets are built: loading it costs a third of a second,
    # and every `lab` command that only validates scenarios imports this module.
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    payload = str(spec.get("payload", "")).encode()
    # A SYN occupies one sequence number: a RST answering it acknowledges seq + 1.
    trigger_end = trigger.seq + len(trigger.payload) + (1 if trigger.tcp_flags & SYN else 0)
    if spec["to"] == "client":
        src, dst, sport, dport = trigger.dst, trigger.src, trigger.dport, trigger.sport
        next_seq, next_ack = trigger.ack, trigger_end
    else:
        src, dst, sport, dport = trigger.src, trigger.dst, trigger.sport, trigger.dport
        next_seq, next_ack = trigger_end, trigger.ack
    seq = int(spec.get("seq", next_seq)) + int(spec.get("seq_offset", 0))
    flags = str(spec.get("flags", "R"))
    ack = int(spec.get("ack", next_ack)) if "A" in flags else int(spec.get("ack", 0))
    ip = IP(src=src, dst=dst, ttl=pick(spec.get("ttl", 64), "ttl", index, trigger.ttl),
            id=pick(spec.get("ip_id", "random"), "ip_id", index),
            flags="DF" if spec.get("df", False) else 0)
    tcp = TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, flags=flags,
              window=pick(spec.get("window", 0), "window", index))
    packet = ip / tcp / Raw(payload) if payload else ip / tcp
    return str(spec["to"]), packet


def inject(ctx: CensorContext, specs: list[Mapping[str, Any]], trigger: Packet) -> None:
    for index, spec in enumerate(specs):
        direction, packet = build(spec, trigger, index)
        ctx.send(direction, packet)
