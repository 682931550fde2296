"""NXDOMAIN for a name that exists: the query is dropped in-path and answered
with rcode 3.

A common ISP-resolver censorship answer; OONI maps it to dns_nxdomain_error
(ooni/probe-cli internal/netxlite/errno.go, from ooni/spec df-007-errors) and
needs a control resolution to tell it from a real NXDOMAIN.
"""

from __future__ import annotations

import dns.message
import dns.rcode

from fingerprint.lab.censors import _dns


class DnsNxdomain(_dns.InPathDns):
    name = "dns_nxdomain"
    techniques = ("dns.nxdomain",)
    title = "NXDOMAIN for an existing name"

    def answer(self, query: dns.message.Message) -> bytes | None:
        return _dns.reply_wire(query, flags=int(self.options["flags"]), rcode=dns.rcode.NXDOMAIN)
