"""A plain firewall: every TCP connection to the platform's addresses is refused
with a TCP reset by the censor's own kernel (iptables `REJECT --reject-with
tcp-reset` in the FORWARD chain of the censor namespace).

This is what an ordinary network firewall does when an operator blocks an
address: the netfilter REJECT target answers a SYN with a RST/ACK (sequence
0, acknowledging the SYN) sent from the router that holds the rule
(iptables-extensions(8), REJECT: "tcp-reset ... sends a TCP RST packet in
reply"; Linux net/ipv4/netfilter/nf_reject_ipv4.c builds it with DF set and
IP ID 0, the same fields a Linux server's closed port shows).  Since the rule
sits on the censor's hop, the reset comes from there: TTL-limited SYNs that
reach the censor but not the server already draw it, which is what tells it
from a server's closed port (issue 13, case 1).  The ICMP variant of the same
firewall is `ip_reject`; a forged reset with the GFW's values is `ip_reset`.
"""

from __future__ import annotations

from fingerprint.lab import topology
from fingerprint.lab.censors.base import Behaviour, CensorSetup


class FirewallReset(Behaviour):
    name = "firewall_reset"
    techniques = ("ip.reset",)
    title = "firewall REJECT --reject-with tcp-reset for the platform's addresses"

    def prepare(self, setup: CensorSetup) -> None:
        for address in self.addresses:
            setup.commands.append([
                "iptables", "-A", "FORWARD", "-i", topology.CENSOR_CLIENT_LINK.right_interface,
                "-d", address, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"])
