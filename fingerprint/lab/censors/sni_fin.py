"""SNI FIN injection: a ClientHello whose server_name matches is dropped and
the client gets a forged FIN carrying a payload, then a RST.

Uzbekistan (ntc.party t/1414, "Ugly shaping, false FINs, and annoying RSTs",
about 2021-22): the ClientHello is answered by injected FIN segments with the
correct seq/ack, arriving too fast to come from the server, with "random" IP
IDs and a non-empty payload containing "Middlebox v 1.0"; re-sent about 1 s
apart when dropped, then a final RST.  Connections without SNI are untouched.
The lab sends one FIN (FIN/PSH/ACK with the payload) at once and the RST
`rst_delay` seconds later; the IP TTL and window are lab choices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors import _tcp
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext

MIDDLEBOX_PAYLOAD = "Middlebox v 1.0\r\n"


class SniFin(Behaviour):
    name = "sni_fin"
    techniques = ("tls.sni_fin",)
    title = 'forged FIN with a "Middlebox v 1.0" payload, then RST'
    queues = frozenset({"tls"})
    defaults: ClassVar[dict[str, Any]] = {
        "payload": MIDDLEBOX_PAYLOAD, "rst_delay": 1.0, "ttl": 64, "ip_id": "random",
        "window": 8192,
    }
    profiles: ClassVar[dict[str, dict[str, Any]]] = {"uzbekistan": {}}

    def on_tls(self, ctx: CensorContext, packet: Packet, sni: str) -> Verdict | None:
        if not self.matches_name(sni):
            return None
        fields = {k: self.options[k] for k in ("ttl", "ip_id", "window")}
        payload = str(self.options["payload"])
        fin = {"to": "client", "flags": "FPA", "payload": payload, **fields}
        rst = {"to": "client", "flags": "RA", "seq_offset": len(payload.encode()) + 1, **fields}
        ctx.drop_flow(packet.flow)
        _tcp.inject(ctx, [fin], packet)
        ctx.later(float(self.options["rst_delay"]),
                     lambda: _tcp.inject(ctx, [rst], packet))
        return Verdict(drop=True)
