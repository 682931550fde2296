"""ICMP administratively prohibited: a SYN to the platform's addresses is
answered with ICMP destination unreachable, code 13 (communication
administratively prohibited, RFC 1812), by the censor.

OONI maps ICMP unreachables to host_unreachable / network_unreachable
(ooni/probe-cli internal/netxlite/errno.go); CenTrace compares the packet the
ICMP error quotes (Sundara Raman et al., CoNEXT 2022).
"""

from __future__ import annotations

from fingerprint.lab.censors.base import Behaviour, CensorSetup


class IpReject(Behaviour):
    name = "ip_reject"
    techniques = ("ip.reject",)
    title = "ICMP administratively prohibited for the platform's addresses"

    def prepare(self, setup: CensorSetup) -> None:
        for address in self.addresses:
            setup.commands.append(["iptables", "-A", "FORWARD", "-d", address, "-j", "REJECT",
                                   "--reject-with", "icmp-admin-prohibited"])
