"""SNI drop: a ClientHello whose server_name matches is dropped, and so is the
rest of that flow; the client waits for a ServerHello that never comes.

Uzbekistan, July 2021 (AS8193 Uzbektelekom; twitter.com, vk.com, skype.com,
TikTok): SNI-only, the TCP handshake works, the ServerHello never arrives (a
timeout, no RST), DNS clean (net4people/bbs#78 from ntc.party t/1122, Jigsaw
measure.sh).  Russia's TSPU is in-path and stateful with SNI-triggered
blocking (Xue et al., IMC 2022); Kazakhstan 2023-24 shows ClientHello
timeouts (ooni.org/post/2024-kazakhstan-report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext


class SniDrop(Behaviour):
    name = "sni_drop"
    techniques = ("tls.sni_drop",)
    title = "matching ClientHello and the rest of its flow dropped"
    queues = frozenset({"tls"})
    defaults: ClassVar[dict[str, Any]] = {"flow_seconds": 300}

    def on_tls(self, ctx: CensorContext, packet: Packet, sni: str) -> Verdict | None:
        if not self.matches_name(sni):
            return None
        ctx.drop_flow(packet.flow, float(self.options["flow_seconds"]))
        return Verdict(drop=True)
