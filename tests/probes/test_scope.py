"""Scope and send rate of a live probe run (root, lab): everything the probe sends goes
where `fingerprint probe --help` says it may, no faster than `--rate`.

tcpdump records the client's only link in the lab, apart from the probe's own
sniffer.  The documented destinations:

* the probed platforms' catalog addresses and the catalog's control addresses
  (TCP 443 and 80; UDP 53 to the first control address, the "no resolver" target;
  UDP 443 to the platforms' addresses, QUIC Initials);
* the resolver under test (UDP 53) and the control resolver (TCP 853, DoT);
* an address the resolver under test returned for a probed name: TCP 443 only (one
  TLS handshake, the certificate check behind dns.redirect), full TTL, only after
  that answer arrived;
* TTL-limited repeats (IP TTL <= --max-hops) toward a platform, control or
  resolver address, never toward anything else;
* ICMP errors the client's kernel sends back to any of those (a late DNS answer
  on a closed port).

The scenario mixes on-path DNS injection (forged real-world addresses, which the
lab cannot route, so nothing may leave for them), a resolver answer pointing at
another lab server (so the returned-address handshake really happens; that server
holds a valid certificate for the name, so it is no redirect), SNI resets and an
open platform; localisation runs for the blocked ones.

The rate: the largest number of IP packets sent in any 1 s window (a window
starting at every sent packet) must stay within `--rate` plus the documented
burst (`RateLimiter.BURST_SECONDS` of the rate).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path

import dns.exception
import dns.message
import dns.rdatatype
import pytest
from lab_helpers import recording, running_lab

from fingerprint.capture.packet import Packet
from fingerprint.capture.reader import open_capture
from fingerprint.catalog import load_catalog
from fingerprint.lab import lab as lab_core
from fingerprint.lab import topology
from fingerprint.lab.scenarios import Rule, Scenario
from fingerprint.probes.runner import RateLimiter

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]

PROBED = ["twitter", "facebook", "google", "linkedin"]
REDIRECT_TO = "wechat"
"""A platform not probed: its lab address is where the resolver redirects facebook."""
RATE = 80.0
MAX_HOPS = 8
FULL_TTL = 64
UDP, TCP, ICMP = 17, 6, 1


def scope_scenario(catalog_address: str) -> Scenario:
    return Scenario("scope-test", "scope test: injection, answer to another server, SNI reset", (), (
        Rule("dns_injection", ("twitter",), {"profile": "gfw"}),
        Rule("dns_redirect", ("facebook",), {"address": catalog_address}),
        Rule("sni_reset", ("twitter", "google"), {"profile": "gfw"}),
    ))


def returned_addresses(received: list[Packet], resolver: str,
                       names: set[str]) -> dict[str, float]:
    """Address -> when the resolver under test first returned it for one of `names`."""
    first: dict[str, float] = {}
    for packet in received:
        if packet.proto != UDP or packet.src != resolver or packet.sport != 53:
            continue
        try:
            message = dns.message.from_wire(packet.payload)
        except dns.exception.DNSException:
            continue
        if not message.question or message.question[0].name.to_text().rstrip(".") not in names:
            continue
        for rrset in message.answer:
            if rrset.rdtype == dns.rdatatype.A:
                for rdata in rrset:
                    first.setdefault(rdata.to_text(), packet.ts)
    return first


def out_of_scope(sent: list[Packet], received: list[Packet], *, client: str, platform: set[str],
                 control: list[str], resolver: str, control_resolver: str,
                 names: set[str]) -> list[str]:
    """Every sent packet the documented scope does not allow, described."""
    returned = returned_addresses(received, resolver, names)
    no_resolver = control[0]
    known = platform | set(control) | {resolver}
    bad: list[str] = []
    for p in sent:
        where = f"{p.src} -> {p.dst} proto {p.proto} dport {p.dport} ttl {p.ttl}"
        if p.src != client:
            bad.append(f"foreign source: {where}")
            continue
        if p.ttl < FULL_TTL:
            if p.dst not in known or p.ttl > MAX_HOPS:
                bad.append(f"TTL-limited packet outside scope: {where}")
            continue
        if p.proto == ICMP:
            if p.dst not in known | {control_resolver} | set(returned):
                bad.append(f"ICMP to an unknown address: {where}")
            continue
        if p.dst in platform or p.dst in control:
            allowed = (p.proto == TCP and p.dport in (443, 80)) or (
                p.proto == UDP and p.dport == 53 and p.dst == no_resolver) or (
                p.proto == UDP and p.dport == 443 and p.dst in platform)
        elif p.dst == resolver:
            allowed = p.proto == UDP and p.dport == 53
        elif p.dst == control_resolver:
            allowed = p.proto == TCP and p.dport == 853
        elif p.dst in returned:
            allowed = p.proto == TCP and p.dport == 443 and p.ts >= returned[p.dst]
        else:
            allowed = False
        if not allowed:
            bad.append(where)
    return bad


def busiest_second(sent: list[Packet]) -> tuple[int, float]:
    """The most packets sent in any 1 s window, and when that window starts."""
    times = sorted(p.ts for p in sent)
    best, start, end = 0, 0.0, 0
    for i, t in enumerate(times):
        while end < len(times) and times[end] < t + 1.0:
            end += 1
        if end - i > best:
            best, start = end - i, t
    return best, start


def test_probe_sends_only_within_its_documented_scope_and_rate(tmp_path: Path) -> None:
    platform_index = sorted(load_catalog().platforms).index(REDIRECT_TO)
    redirect_address = topology.platform_address(platform_index)
    with running_lab(scope_scenario(redirect_address)) as info:
        catalog = info.catalog
        command = [*lab_core.probe_command(info, 2.0, None), "--rate", str(RATE),
                   "--max-hops", str(MAX_HOPS)]
        for platform in PROBED:
            command += ["--platform", platform]
        with recording(tmp_path / "sent.pcap", "out") as sent_path, \
                recording(tmp_path / "received.pcap", "in") as received_path:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                  check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    found = {p["platform"]: sorted(p["techniques"]) for p in report["platforms"]}
    # The run did what the scope must cover: injection, a redirect that was checked, resets.
    assert "dns.injection" in found["twitter"] and "tls.sni_reset" in found["google"], found
    # The lab's web server presents each name's certificate on every address (a shared
    # host), so the certificate check finds the redirected answer genuine.
    assert found["facebook"] == [] and found["linkedin"] == [], found

    sent = list(open_capture(sent_path))
    received = list(open_capture(received_path))
    platform_addresses = {a for pid in PROBED for a in catalog.platforms[pid].addresses}
    names = {d for pid in PROBED for d in catalog.platforms[pid].domains}
    bad = out_of_scope(sent, received, client=topology.CLIENT_ADDRESS,
                       platform=platform_addresses, control=list(catalog.control_addresses),
                       resolver=info.resolver,
                       control_resolver=topology.CONTROL_RESOLVER_ADDRESS, names=names)
    destinations: dict[str, int] = defaultdict(int)
    for p in sent:
        destinations[p.dst] += 1
    assert not bad, f"{len(bad)} packets out of scope, e.g. {bad[:10]}"
    # The redirect check contacted the returned address (else this test proves little).
    assert destinations.get(redirect_address, 0) > 0, dict(destinations)
    assert any(p.ttl < FULL_TTL for p in sent), "no TTL-limited repeat was sent"

    limit = RATE * (1 + RateLimiter.BURST_SECONDS)
    busiest, when = busiest_second(sent)
    print(f"scope: {len(sent)} packets sent to {len(destinations)} destinations "
          f"{sorted(destinations)}; busiest 1 s window {busiest} packets "
          f"(--rate {RATE:g}, limit with burst {limit:g})")
    assert busiest <= limit, (busiest, when)
