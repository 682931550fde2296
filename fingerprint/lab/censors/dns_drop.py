"""DNS drop: queries for the name are dropped in-path and nobody answers.

OONI reports this as generic_timeout_error on the DNS lookup while the control
lookup works (ooni/probe-cli internal/netxlite/errno.go); the GFW does the
same to QUIC, and Iran's protocol filter drops for 60 s (Bock et al., FOCI
2020).
"""

from __future__ import annotations

from typing import Any, ClassVar

import dns.message

from fingerprint.lab.censors import _dns


class DnsDrop(_dns.InPathDns):
    name = "dns_drop"
    techniques = ("dns.drop",)
    title = "queries for the name are dropped"
    defaults: ClassVar[dict[str, Any]] = {"any_destination": False}

    def answer(self, query: dns.message.Message) -> bytes | None:
        return None
