"""SERVFAIL for a name that resolves elsewhere: the query is dropped in-path
and answered with rcode 2.

Censored Planet warns that SERVFAILs also come from geoblocking and outages,
so only a working control tells censorship apart (Raman et al. 2023, via the
lantern corpus summary); OONI's string is dns_servfail_error (ooni/spec
df-007-errors).
"""

from __future__ import annotations

import dns.message
import dns.rcode

from fingerprint.lab.censors import _dns


class DnsServfail(_dns.InPathDns):
    name = "dns_servfail"
    techniques = ("dns.error",)
    title = "SERVFAIL for an existing name"

    def answer(self, query: dns.message.Message) -> bytes | None:
        return _dns.reply_wire(query, flags=int(self.options["flags"]),
                               rcode=dns.rcode.SERVFAIL)
