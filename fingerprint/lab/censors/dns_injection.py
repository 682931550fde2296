"""On-path DNS injection: a forged answer raced ahead of the genuine one.

The query is let through (on-path: the resolver still answers, later), and a
forged response is sent to the querier from the queried address, for A
queries whose name matches.  Every header value is configurable; the
profiles reproduce published injectors:

* `gfw`: forged addresses from OONI's CN rows (ooni/blocking-fingerprints
  `fingerprints_dns.csv` @171641e: 8.7.198.45, 37.61.54.158, 46.82.174.68,
  78.16.49.15, 93.46.8.89, 159.106.121.75, 203.98.7.65, 59.24.3.173,
  243.185.187.39), header flags 0x8580 (QR AA RD RA), as observed in
  gfw-report/usenixsecurity25-quic-sni
  `experiments/ttl-location/data/DNS/beijing-dns-and-traceroute-result.txt`.
  The GFW injectors' IP TTL / IP ID are not published per injector (FOCI 2020
  "Triplet Censors"); the lab draws them at random per answer, no DF.
* `turkmenistan`: `A 127.0.0.1`, DNS TTL 300, flags qr rd ra (0x8180),
  IP ID 30000, initial IP TTL 128, no DF (breakerspace/turkmenistan-censorship
  README, Nourin et al., WWW 2023).
* `ttl-copy`: the GFW "Triplet" injector that copies the probe's IP TTL into
  its reply (as the censor saw it), which defeats TTL-limited localisation
  (FOCI 2020, gfw.report/publications/foci20_dns/en).

Injection fires for any destination address, including addresses that run
no resolver, as the GFW does (FOCI 2020; OONI Signal report 2021-10-21).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar

import dns.message
import dns.rdataclass
import dns.rdatatype

from fingerprint.lab.censors import _dns
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext

GFW_FORGED_ADDRESSES = ["8.7.198.45", "37.61.54.158", "46.82.174.68", "78.16.49.15",
                        "93.46.8.89", "159.106.121.75", "203.98.7.65", "59.24.3.173",
                        "243.185.187.39"]


class DnsInjection(Behaviour):
    name = "dns_injection"
    techniques = ("dns.injection",)
    title = "on-path DNS injection (forged answer races the resolver's)"
    queues = frozenset({"dns"})
    defaults: ClassVar[dict[str, Any]] = {
        "addresses": GFW_FORGED_ADDRESSES, "flags": 0x8580, "dns_ttl": 60,
        "ttl": "random", "ip_id": "random", "df": False,
    }
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "gfw": {},
        "turkmenistan": {"addresses": ["127.0.0.1"], "flags": 0x8180, "dns_ttl": 300,
                         "ttl": 128, "ip_id": 30000, "df": False},
        "ttl-copy": {"ttl": "copy"},
    }

    def on_dns(self, ctx: CensorContext, packet: Packet, query: dns.message.Message
               ) -> Verdict | None:
        question = query.question[0]
        if (question.rdtype != dns.rdatatype.A or question.rdclass != dns.rdataclass.IN
                or not self.matches_name(question.name.to_text())):
            return None
        forged = random.choice(list(self.options["addresses"]))
        wire = _dns.reply_wire(query, flags=int(self.options["flags"]), addresses=[forged],
                               dns_ttl=int(self.options["dns_ttl"]))
        # Sent before the query is let through: the forged answer always wins.
        _dns.send_reply(ctx, packet, wire, self.options)
        return Verdict()
