"""HTTP RST injection: a plain-HTTP request whose Host matches draws forged
RST/ACKs towards the client and the server (on-path: the request goes on).

The GFW resets HTTP by keyword/Host the same way it resets TLS (Wang et al.,
IMC 2017 §2.1); Turkmenistan's RSTs also fire on an HTTP Host with the same
fingerprint (breakerspace/turkmenistan-censorship README).  Segment fields as
in `sni_reset` (`packets`, see `_tcp.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors import _tcp
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fingerprint.lab.censors.base import CensorContext


class HttpReset(Behaviour):
    name = "http_reset"
    techniques = ("http.reset",)
    title = "forged RSTs on a matching HTTP Host"
    queues = frozenset({"http"})
    defaults: ClassVar[dict[str, Any]] = {"packets": [
        {"to": "client", "flags": "RA", "ttl": 64, "ip_id": 0, "window": 0},
        {"to": "server", "flags": "RA", "ttl": 64, "ip_id": 0, "window": 0}]}

    def __init__(self, options: Mapping[str, Any], domains: tuple[str, ...],
                 addresses: tuple[str, ...]) -> None:
        super().__init__(options, domains, addresses)
        self.packets = _tcp.check_specs(self.name, self.options["packets"])

    def on_http(self, ctx: CensorContext, packet: Packet, host: str) -> Verdict | None:
        if not self.matches_name(host):
            return None
        return Verdict(then=[lambda: _tcp.inject(ctx, self.packets, packet)])
