"""Localisation over IPv4 and IPv6 from the same crafted scenarios, and ICMP meanings.

Routers name themselves with ICMP time exceeded (type 11) over IPv4 and ICMPv6
time exceeded (type 3, which is "destination unreachable" in ICMPv4) over IPv6.
The same censor on the same path must be placed at the same hop, after the
same router, whichever family the probe used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6TimeExceeded, IPv6
from scapy.packet import Packet as ScapyPacket

from fingerprint.capture.dissect import LINKTYPE_IPV4, LINKTYPE_IPV6, dissect
from fingerprint.capture.packet import Packet, Unreachable
from fingerprint.testing import replay
from fingerprint.testing.craft import Capture


@dataclass(frozen=True)
class Path_:
    family: str
    client: str
    server: str
    routers: tuple[str, ...]
    """ROUTERS[k - 1] answers a trigger that expires at TTL k; the server is one hop further."""


V4 = Path_("ipv4", "192.0.2.10", "203.0.113.10",
           ("192.0.2.1", "198.51.100.2", "198.51.100.6", "198.51.100.10", "198.51.100.14"))
V6 = Path_("ipv6", "2001:db8:100::10", "2001:db8:203::10",
           ("2001:db8:1::1", "2001:db8:2::2", "2001:db8:3::6", "2001:db8:4::10", "2001:db8:5::14"))
SERVER_HOP = len(V4.routers) + 1
CENSOR_HOP = 3
TARGET, CONTROL = "twitter.com", "example.com"


def _capture(tmp: Path, path: Path_, censor: str) -> Path:
    """A TLS probe run: full-TTL attempts, then ClientHellos with TTL 1..8, target and control.

    `censor` is "drop" (the censor at CENSOR_HOP drops the ClientHello) or "reset"
    (it injects an RST+ACK with its own TTL and lets the ClientHello expire further on).
    """
    cap = Capture(seed=3, client=V4.client, client6=V6.client)
    t = 0.0

    def attempt(sni: str, ttl: int | None) -> None:
        nonlocal t
        flow = cap.tcp(path.server, 443, at=t)
        flow.handshake()
        flow.client_hello(sni, ttl=ttl)
        hop_reached = ttl if ttl is not None else 64
        censored = sni == TARGET and hop_reached >= CENSOR_HOP
        if censored and censor == "reset":
            flow.inject("RA", at_ms=4, ttl=120, ip_id=0 if path is V4 else None)
        if censored and censor == "drop":
            flow.client_close(at_ms=3000)
        elif hop_reached < SERVER_HOP:
            flow.expire(path.routers[hop_reached - 1], at_ms=2)
            flow.client_close(at_ms=3000)
        elif not censored:
            flow.server_hello()
        t += 4.0

    for _ in range(2):
        attempt(CONTROL, None)
        attempt(TARGET, None)
    for ttl in range(1, 9):
        attempt(CONTROL, ttl)
        attempt(TARGET, ttl)
    return cap.write(tmp / f"{path.family}-{censor}.pcapng")


@pytest.mark.parametrize("censor,technique", [("drop", "tls.sni_drop"), ("reset", "tls.sni_reset")])
def test_same_hop_and_router_over_ipv4_and_ipv6(tmp_path: Path, censor: str, technique: str) -> None:
    locations = {}
    for path in (V4, V6):
        result = replay(_capture(tmp_path, path, censor))
        finding = result.expect(technique=technique)
        assert finding.address == path.server
        assert finding.location is not None, path.family
        locations[path.family] = finding.location
    for path in (V4, V6):
        location = locations[path.family]
        assert location.hop == CENSOR_HOP, (path.family, location)
        # The last router that answered before the censor's hop.
        assert location.router == path.routers[CENSOR_HOP - 2], (path.family, location)
    assert locations["ipv4"].mode == locations["ipv6"].mode
    v6_names = dict(zip(V4.routers, V6.routers, strict=True))
    basis = locations["ipv4"].basis
    for router in sorted(v6_names, key=len, reverse=True):
        basis = basis.replace(router, v6_names[router])
    assert basis == locations["ipv6"].basis


def _packet(raw: bytes) -> Packet:
    parsed = dissect(1, 0.0, LINKTYPE_IPV6 if raw[0] >> 4 == 6 else LINKTYPE_IPV4, raw)
    assert parsed is not None
    return parsed


QUOTED4 = bytes(IP(src=V4.client, dst=V4.server) / TCP(sport=40000, dport=443, flags="S"))
QUOTED6 = bytes(IPv6(src=V6.client, dst=V6.server) / TCP(sport=40000, dport=443, flags="S"))


@pytest.mark.parametrize("raw,exceeded,kind", [
    (IP(src=V4.routers[0], dst=V4.client) / ICMP(type=11, code=0) / QUOTED4, True, None),
    (IPv6(src=V6.routers[0], dst=V6.client) / ICMPv6TimeExceeded() / QUOTED6, True, None),
    (IP(src=V4.routers[0], dst=V4.client) / ICMP(type=3, code=13) / QUOTED4, False,
     Unreachable.ADMIN_PROHIBITED),
    (IPv6(src=V6.routers[0], dst=V6.client) / ICMPv6DestUnreach(code=1) / QUOTED6, False,
     Unreachable.ADMIN_PROHIBITED),
    (IP(src=V4.server, dst=V4.client) / ICMP(type=3, code=3) / QUOTED4, False, Unreachable.PORT),
    (IPv6(src=V6.server, dst=V6.client) / ICMPv6DestUnreach(code=4) / QUOTED6, False,
     Unreachable.PORT),
    (IP(src=V4.routers[0], dst=V4.client) / ICMP(type=3, code=0) / QUOTED4, False,
     Unreachable.NETWORK),
    (IPv6(src=V6.routers[0], dst=V6.client) / ICMPv6DestUnreach(code=0) / QUOTED6, False,
     Unreachable.NETWORK),
    (IPv6(src=V6.routers[0], dst=V6.client) / ICMPv6DestUnreach(code=3) / QUOTED6, False,
     Unreachable.HOST),
], ids=["v4-exceeded", "v6-exceeded", "v4-admin", "v6-admin", "v4-port", "v6-port", "v4-net",
        "v6-net", "v6-host"])
def test_icmp_meanings_for_both_families(raw: ScapyPacket, exceeded: bool,
                                         kind: Unreachable | None) -> None:
    packet = _packet(bytes(raw))
    assert packet.is_icmp
    assert packet.is_time_exceeded is exceeded
    assert packet.is_unreachable is (kind is not None)
    assert packet.unreachable_kind is kind
    assert packet.quoted is not None and packet.quoted.dport == 443


def test_a_tcp_packet_has_no_icmp_meaning() -> None:
    packet = _packet(QUOTED4)
    assert not packet.is_time_exceeded and not packet.is_unreachable
    assert packet.unreachable_kind is None
