"""RST to SYN: a TCP SYN to the platform's addresses is answered by forged
RST/ACKs from the censor, on ports the control shows open.

The resets are forged by the censor engine, not by iptables' REJECT: the
kernel's own tcp-reset is exactly what a Linux server sends for a closed port
(DF set, IP ID 0, window 0; signature fp-linux-closed-port-rst), so it proves
nothing about a censor.  Profile `gfw-2025` (the default) follows the GFW's
unconditional reset of 2025-08-20 (gfw.report/blog/gfw_unconditional_rst_20250820,
00:34-01:48 UTC+8, port 443): every trigger drew three RST+ACKs, and a SYN's
resets carried seq 0 with windows 1980, 1981, 1982.  The blog does not give
their IP ID, DF or TTL: the lab sends them without DF, with a random non-zero
IP ID and an initial TTL of 64 from the censor's hop (so they arrive with a
TTL unlike the server's, which is two hops further away).  OONI reports such
a reset as connection_refused (ooni/probe-cli internal/netxlite/errno.go).

The lab also drops the SYN (`drop_trigger`, a lab choice: the blog does not
say whether the server's SYN+ACK still arrived), so the connection fails the
way users see it rather than racing the server's answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors import _tcp
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fingerprint.lab.censors.base import CensorContext


def _gfw_2025_packets() -> list[dict[str, Any]]:
    return [{"to": "client", "flags": "RA", "seq": 0, "window": window, "ttl": 64,
             "ip_id": "random", "df": False} for window in (1980, 1981, 1982)]


class IpReset(Behaviour):
    name = "ip_reset"
    techniques = ("ip.reset",)
    title = "TCP SYNs to the platform's addresses answered by forged RST/ACKs"
    queues = frozenset({"syn"})
    defaults: ClassVar[dict[str, Any]] = {"packets": _gfw_2025_packets(), "drop_trigger": True}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {"gfw-2025": {}}

    def __init__(self, options: Mapping[str, Any], domains: tuple[str, ...],
                 addresses: tuple[str, ...]) -> None:
        super().__init__(options, domains, addresses)
        self.packets = _tcp.check_specs(self.name, self.options["packets"])

    def on_syn(self, ctx: CensorContext, packet: Packet) -> Verdict | None:
        if packet.dst not in self.addresses:
            return None
        if self.options["drop_trigger"]:
            _tcp.inject(ctx, self.packets, packet)
            return Verdict(drop=True)
        return Verdict(then=[lambda: _tcp.inject(ctx, self.packets, packet)])
