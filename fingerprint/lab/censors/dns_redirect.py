"""Resolver redirect: the query is dropped in-path and answered with a
blockpage or sinkhole address instead of the platform's.

Profile `iran`: 10.10.34.34, Iran's blockpage address (OONI
ooni/blocking-fingerprints `fingerprints_dns.csv` @171641e, row ir_4; .35 is
ir_5, .36 ir_10dot10_ipv4_1).  OONI labels this dns.injection.blockpage /
dns_bogon_error (ooni/data docs/label-corpus-design.md).  The reply carries
the lab resolver's header values (qr rd ra; IP TTL and DF as the resolver's
own reply has them at the censor), so it reads as the resolver lying.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dns.message
import dns.rdatatype

from fingerprint.lab.censors import _dns


class DnsRedirect(_dns.InPathDns):
    name = "dns_redirect"
    techniques = ("dns.redirect",)
    title = "resolver answers a blockpage/sinkhole address"
    defaults: ClassVar[dict[str, Any]] = {**_dns.RESOLVER_LIKE, "address": "10.10.34.34"}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {"iran": {"address": "10.10.34.34"}}

    def answer(self, query: dns.message.Message) -> bytes | None:
        is_a = query.question[0].rdtype == dns.rdatatype.A
        return _dns.reply_wire(query, flags=int(self.options["flags"]),
                               addresses=[str(self.options["address"])] if is_a else [],
                               dns_ttl=int(self.options["dns_ttl"]))
