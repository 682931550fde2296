"""IP blackhole: every packet to the platform's addresses is dropped.

SYNs go unanswered while control addresses answer; OONI reports
generic_timeout_error / tcp.timeout (ooni/probe-cli internal/netxlite/
errno.go; ooni/data docs/label-corpus-design.md).  Russia blackholed Telegram's
address ranges in 2018, Turkmenistan whole /8s and CDNs (net4people/bbs#378).
"""

from __future__ import annotations

from fingerprint.lab.censors.base import Behaviour, CensorSetup


class IpBlackhole(Behaviour):
    name = "ip_blackhole"
    techniques = ("ip.blackhole",)
    title = "packets to the platform's addresses dropped"

    def prepare(self, setup: CensorSetup) -> None:
        for address in self.addresses:
            setup.commands.append(["iptables", "-A", "FORWARD", "-d", address, "-j", "DROP"])
