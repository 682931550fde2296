"""UDP/443 dropped for everyone: QUIC (HTTP/3) cannot start, TCP/443 works.

UDP endpoint blocking of HTTP/3 was measured in Iran (2021), India, Russia and
Uganda (2022) by Elmenhorst et al. ("Web censorship measurements of HTTP/3
over QUIC", IMC 2021; kelmenhorst/quic-censorship document.md): Initials are
black-holed whatever their SNI while HTTPS over TCP to the same address works.
The rule is one iptables DROP for UDP destination port 443 in the censor's
FORWARD chain; no packet is inspected.
"""

from __future__ import annotations

from fingerprint.lab.censors.base import Behaviour, CensorSetup


class UdpDrop(Behaviour):
    name = "udp_drop"
    techniques = ("quic.drop",)
    title = "every datagram to UDP port 443 dropped"

    def prepare(self, setup: CensorSetup) -> None:
        setup.once("udp-443-drop", [["iptables", "-A", "FORWARD", "-p", "udp", "--dport", "443",
                                     "-j", "DROP"]])
