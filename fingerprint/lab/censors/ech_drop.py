"""ECH drop: a ClientHello carrying encrypted_client_hello with a matching outer SNI is
dropped, and so is the rest of its flow; over TCP (the ClientHello reassembled from
TCP segments and TLS records) and over QUIC (the Initial decrypted).

Russia's TSPU since 2024-11-05 (net4people/bbs#417, moved from #393): the trigger is
the SNI cloudflare-ech.com together with an ECH extension, neither alone; packets
are dropped, no RST; TCP and QUIC alike.  The scenario gives the outer names as
the rule's platform domains; `any_outer: true` drops ECH whatever the outer SNI
(the GFW's ESNI block of 2020 keyed on the extension alone, gfw.report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, CensorContext, Verdict

if TYPE_CHECKING:
    from fingerprint.protocols.tls import ClientHello


class EchDrop(Behaviour):
    name = "ech_drop"
    techniques = ("tls.ech_drop",)
    title = "ClientHello with ECH and a matching outer SNI dropped (TCP and QUIC)"
    queues = frozenset({"hello", "quic"})
    defaults: ClassVar[dict[str, Any]] = {"any_outer": False, "flow_seconds": 300}

    def _matches(self, hello: ClientHello) -> bool:
        if not (hello.ech_present or hello.esni_present):
            return False
        return bool(self.options["any_outer"]) or (hello.sni is not None
                                                   and self.matches_name(hello.sni))

    def on_hello(self, ctx: CensorContext, packet: Packet, hello: ClientHello) -> Verdict | None:
        if not self._matches(hello):
            return None
        ctx.drop_flow(packet.flow, float(self.options["flow_seconds"]))
        return Verdict(drop=True)

    def on_quic(self, ctx: CensorContext, packet: Packet, hello: ClientHello) -> Verdict | None:
        if not self._matches(hello):
            return None
        ctx.drop_flow(packet.flow, float(self.options["flow_seconds"]))
        return Verdict(drop=True)
