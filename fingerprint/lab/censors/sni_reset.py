"""SNI RST injection: a ClientHello whose server_name matches draws forged
TCP resets towards the client and/or the server.

The injected segments are data (see `_tcp.py`): direction, flags, sequence
offset, IP TTL, IP ID, window, DF.  Profiles:

* `gfw`: for each direction, one type-1 RST (RST only, random TTL and window)
  and three type-2 RST/ACKs at seq X, X+1460, X+4380 whose TTL and window
  step upward, towards both client and server (Wang et al., "Your State is Not
  Mine", IMC 2017, §2.1).  The type-1 IP ID is 0 as this project's brief
  specifies; the type-2 starting TTL/window values are lab choices, since the
  paper gives only their pattern.  On-path: the ClientHello still reaches the
  server.
* `turkmenistan`: one RST to the client, seq 0, window 0, IP ID 30000,
  initial TTL 128, no DF (breakerspace/turkmenistan-censorship README, Nourin
  et al., WWW 2023).  A seq-0 RST is outside the client's window and would be
  ignored by the client's stack, so the lab also drops the ClientHello and the
  rest of the flow to make the block effective as users see it (an inference,
  not a published fact).
* `russia-dpi`: ISP passive DPI, RST/ACK to the client and to the server,
  IP ID 0x0001, sent faster than the server (ValdikSS/GoodbyeDPI README;
  bol-van/zapret docs/readme.eng.md).

Option `residual_seconds` (e.g. 90) adds the GFW's penalty box on (client,
server, port) (Rambert et al., WWW 2021); `residual_scope: client` flags the
client's whole address instead, as simpler censors do (see `base.py`).

Option `delay_ms` sends the resets that long after the trigger, on-path only:
a slow injector (a monitor off the fast path, as the GFW's, Wang et al.
IMC 2017 §2) may let the server's ServerHello reach the client first; the
injected resets are still the censor's answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors import _tcp
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fingerprint.lab.censors.base import CensorContext


def _gfw_packets() -> list[dict[str, Any]]:
    packets: list[dict[str, Any]] = []
    for to in ("client", "server"):
        packets.append({"to": to, "flags": "R", "ttl": "random", "window": "random", "ip_id": 0})
        for step, offset in enumerate((0, 1460, 4380)):
            packets.append({"to": to, "flags": "RA", "seq_offset": offset, "ttl": 47 + step,
                            "window": 2048 + step, "ip_id": "random"})
    return packets


class SniReset(Behaviour):
    name = "sni_reset"
    techniques = ("tls.sni_reset",)
    title = "forged RSTs on a matching ClientHello SNI"
    queues = frozenset({"tls"})
    defaults: ClassVar[dict[str, Any]] = {"packets": _gfw_packets(), "drop_trigger": False,
                                          "delay_ms": 0}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "gfw": {},
        "turkmenistan": {"drop_trigger": True, "packets": [
            {"to": "client", "flags": "R", "seq": 0, "window": 0, "ip_id": 30000, "ttl": 128,
             "df": False}]},
        "russia-dpi": {"packets": [
            {"to": "client", "flags": "RA", "ip_id": 1, "ttl": 64, "window": 0},
            {"to": "server", "flags": "RA", "ip_id": 1, "ttl": 64, "window": 0}]},
    }

    def __init__(self, options: Mapping[str, Any], domains: tuple[str, ...],
                 addresses: tuple[str, ...]) -> None:
        super().__init__(options, domains, addresses)
        self.packets = _tcp.check_specs(self.name, self.options["packets"])

    def on_tls(self, ctx: CensorContext, packet: Packet, sni: str) -> Verdict | None:
        if not self.matches_name(sni):
            return None
        if self.options["drop_trigger"]:
            ctx.drop_flow(packet.flow)
            _tcp.inject(ctx, self.packets, packet)
            return Verdict(drop=True)
        # On-path: the ClientHello goes on, the resets race the server's answer.
        delay = float(self.options["delay_ms"]) / 1000
        if delay > 0:
            return Verdict(then=[lambda: ctx.later(
                delay, lambda: _tcp.inject(ctx, self.packets, packet))], residual_after=delay)
        return Verdict(then=[lambda: _tcp.inject(ctx, self.packets, packet)])
