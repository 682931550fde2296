"""SNI throttling: a flow whose ClientHello server_name matches is rate
limited in both directions by dropping what exceeds the rate.

Russia's Twitter throttling from 2021-03-10: triggered by SNIs matching
`*t.co*`, `*.twimg.com`, `*twitter.com`; 130-150 kbps up and down, done by
dropping packets; the device looks at the first packet of both directions
(censoredplanet.org/throttling; Xue et al., IMC 2021).  Uzbekistan shaped
Twitter, Viber and Skype by SNI too (ntc.party t/1414).

How: the engine marks the ClientHello (fwmark 0x7); iptables saves it to the
connection and restores it on every later packet of both directions, CLASSIFY
puts marked packets in htb class 1:20 on both censor interfaces, and a tbf
under that class drops beyond `rate_kbit` (this kernel has no fw classifier,
so the mark becomes a class through CLASSIFY).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab import topology
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, CensorSetup, Verdict

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext

THROTTLE_MARK = 0x7
THROTTLE_CLASS = "1:20"


class SniThrottle(Behaviour):
    name = "sni_throttle"
    techniques = ("tls.sni_throttle",)
    title = "flows with a matching SNI rate-limited by drops"
    queues = frozenset({"tls"})
    defaults: ClassVar[dict[str, Any]] = {"rate_kbit": 140, "burst_bytes": 3000,
                                          "limit_bytes": 6000}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {"russia-twitter-2021": {"rate_kbit": 140}}

    def prepare(self, setup: CensorSetup) -> None:
        rate = f"{int(self.options['rate_kbit'])}kbit"
        commands: list[list[str]] = []
        for ifname in (topology.CENSOR_CLIENT_LINK.right_interface,
                       topology.CENSOR_SERVER_LINK.left_interface):
            commands += [
                ["tc", "qdisc", "add", "dev", ifname, "root", "handle", "1:", "htb",
                 "default", "10", "r2q", "1000"],
                ["tc", "class", "add", "dev", ifname, "parent", "1:", "classid", "1:10", "htb",
                 "rate", "10gbit"],
                ["tc", "class", "add", "dev", ifname, "parent", "1:", "classid", THROTTLE_CLASS,
                 "htb", "rate", rate, "ceil", rate],
                ["tc", "qdisc", "add", "dev", ifname, "parent", THROTTLE_CLASS, "handle", "20:",
                 "tbf", "rate", rate, "burst", str(int(self.options["burst_bytes"])),
                 "limit", str(int(self.options["limit_bytes"]))],
            ]
        mark = hex(THROTTLE_MARK)
        commands += [
            ["iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "CONNMARK", "--restore-mark"],
            ["iptables", "-t", "mangle", "-A", "POSTROUTING", "-m", "mark", "--mark", mark,
             "-j", "CONNMARK", "--save-mark"],
            ["iptables", "-t", "mangle", "-A", "POSTROUTING", "-m", "mark", "--mark", mark,
             "-j", "CLASSIFY", "--set-class", THROTTLE_CLASS],
        ]
        setup.once("throttle", commands)

    def on_tls(self, ctx: CensorContext, packet: Packet, sni: str) -> Verdict | None:
        if not self.matches_name(sni):
            return None
        return Verdict(mark=THROTTLE_MARK)
