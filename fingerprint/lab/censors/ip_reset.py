"""RST to SYN: a TCP SYN to the platform's addresses is answered with a
RST/ACK from the censor, on ports the control shows open.

OONI's connection_refused (ooni/probe-cli internal/netxlite/errno.go); the
GFW's residual penalty also answers with resets (Wang et al., IMC 2017).
"""

from __future__ import annotations

from fingerprint.lab.censors.base import Behaviour, CensorSetup


class IpReset(Behaviour):
    name = "ip_reset"
    techniques = ("ip.reset",)
    title = "TCP SYNs to the platform's addresses answered by RST"

    def prepare(self, setup: CensorSetup) -> None:
        for address in self.addresses:
            setup.commands.append(["iptables", "-A", "FORWARD", "-d", address, "-p", "tcp",
                                   "-j", "REJECT", "--reject-with", "tcp-reset"])
