"""Censor behaviours, one module each; the registry maps a scenario's
`behaviour:` name to its class.

To add one: write `censors/<name>.py` with a Behaviour subclass whose module
docstring cites the published source and its values, list it below, and give
it a unit test in `tests/lab/test_censor_behaviours.py` (a fake
`CensorContext` records what it does with crafted packets; no root needed).

The censors parse packets with their own code (`_wire.py`), on purpose: the
lab is the oracle the analysis is tested against, so it must not share the
analysis' parser (`fingerprint.capture` and `fingerprint.protocols`), whose
bug would then hide itself.  `tests/lab/test_parser_agreement.py` checks the
two parsers against each other over every fixture capture under `pcaps/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fingerprint.lab._system import LabError
from fingerprint.lab.censors.base import Behaviour
from fingerprint.lab.censors.dns_drop import DnsDrop
from fingerprint.lab.censors.dns_injection import DnsInjection
from fingerprint.lab.censors.dns_nxdomain import DnsNxdomain
from fingerprint.lab.censors.dns_redirect import DnsRedirect
from fingerprint.lab.censors.dns_servfail import DnsServfail
from fingerprint.lab.censors.ech_drop import EchDrop
from fingerprint.lab.censors.firewall_reset import FirewallReset
from fingerprint.lab.censors.http_blockpage import HttpBlockpage
from fingerprint.lab.censors.http_reset import HttpReset
from fingerprint.lab.censors.ip_blackhole import IpBlackhole
from fingerprint.lab.censors.ip_reject import IpReject
from fingerprint.lab.censors.ip_reset import IpReset
from fingerprint.lab.censors.quic_sni_drop import QuicSniDrop
from fingerprint.lab.censors.slow_path import SlowPath
from fingerprint.lab.censors.sni_drop import SniDrop
from fingerprint.lab.censors.sni_fin import SniFin
from fingerprint.lab.censors.sni_reset import SniReset
from fingerprint.lab.censors.sni_throttle import SniThrottle
from fingerprint.lab.censors.tls_mitm import TlsMitm
from fingerprint.lab.censors.udp_drop import UdpDrop

BEHAVIOURS: dict[str, type[Behaviour]] = {cls.name: cls for cls in (
    DnsInjection, DnsRedirect, DnsNxdomain, DnsServfail, DnsDrop,
    SniReset, SniDrop, SniFin, SniThrottle, TlsMitm,
    IpBlackhole, IpReject, IpReset, FirewallReset,
    HttpBlockpage, HttpReset,
    SlowPath,
    QuicSniDrop, UdpDrop, EchDrop,
)}


def build_behaviour(name: str, options: Mapping[str, Any], domains: tuple[str, ...],
                    addresses: tuple[str, ...]) -> Behaviour:
    cls = BEHAVIOURS.get(name)
    if cls is None:
        raise LabError(f"unknown censor behaviour {name!r} (known: {', '.join(sorted(BEHAVIOURS))})")
    return cls(options, domains, addresses)


def build_behaviours(rules: list[dict[str, Any]]) -> list[Behaviour]:
    """Behaviours from the engine config's rules (behaviour, options, domains, addresses)."""
    return [build_behaviour(r["behaviour"], r.get("options", {}), tuple(r["domains"]),
                            tuple(r["addresses"])) for r in rules]
