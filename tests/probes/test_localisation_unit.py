"""Localisation of DNS injectors from crafted TTL-limited repeats (no privileges).

A TTL-copying injector (the GFW's "Triplet" injector, FOCI 2020) at hop h answers a
query sent with TTL k with IP TTL k-(h-1); its answer crosses h-1 routers back and
arrives with k-2(h-1), so it is first seen at k = 2h-1, not at k = h.  The captures
below are built packet by packet for a path of six hops (resolver at hop 6).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fingerprint.testing import replay
from fingerprint.testing.craft import Capture

CLIENT = "192.0.2.10"
RESOLVER = "203.0.113.53"
ROUTERS = ["192.0.2.1", "198.51.100.2", "198.51.100.6", "198.51.100.10", "198.51.100.14"]
"""The router answering a query that expires at TTL k is ROUTERS[k - 1]."""
RESOLVER_HOP = len(ROUTERS) + 1
GENUINE = "142.250.1.1"
"""An address in Google's published ranges (the built-in catalog's google networks)."""
FORGED = "8.7.198.45"
FULL_TTL = 64


def _capture(path: Path, injector_hop: int, copies_ttl: bool) -> Path:
    cap = Capture(seed=injector_hop, client=CLIENT)
    rng = random.Random(injector_hop)
    genuine_ttl = FULL_TTL - (RESOLVER_HOP - 1)
    t = 0.0
    for _ in range(2):  # control name on the same resolver, answered genuinely
        cap.dns(RESOLVER, "example.com", at=t).respond(["203.0.113.99"], delay_ms=30,
                                                      ttl=genuine_ttl)
        t += 0.1

    def injected_ttl(trigger_ttl: int) -> int | None:
        """Arrival TTL of the injected answer, None when it dies on the way back."""
        if trigger_ttl < injector_hop:
            return None
        if not copies_ttl:
            return rng.randrange(40, 250)
        arrival = trigger_ttl - 2 * (injector_hop - 1)
        return arrival if arrival >= 1 else None

    for trigger_ttl in [FULL_TTL, FULL_TTL, *range(1, 11)]:
        query = cap.dns(RESOLVER, "google.com", at=t, ttl=trigger_ttl)
        if trigger_ttl < RESOLVER_HOP:
            query.expire(ROUTERS[trigger_ttl - 1], delay_ms=2)
        arrival = injected_ttl(trigger_ttl)
        if arrival is not None:
            query.respond([FORGED], delay_ms=5, ttl=arrival, df=False, flags=0x8580)
        if trigger_ttl >= RESOLVER_HOP:
            query.respond([GENUINE], delay_ms=30, ttl=genuine_ttl)
        t += 0.1
    return cap.write(path / "capture.pcapng")


@pytest.mark.parametrize("injector_hop", [2, 3, 4])
def test_ttl_copying_injector_is_placed_at_its_own_hop(tmp_path: Path, injector_hop: int) -> None:
    result = replay(_capture(tmp_path, injector_hop, copies_ttl=True))
    finding = result.expect(technique="dns.injection", target="google.com")
    assert finding.location is not None
    location = finding.location.to_json()
    assert location["ttl_copying"] is True
    assert location["hop"] == injector_hop, location
    assert location["router"] == ROUTERS[injector_hop - 2]


def test_non_copying_injector_is_placed_where_its_answer_first_shows(tmp_path: Path) -> None:
    result = replay(_capture(tmp_path, 3, copies_ttl=False))
    finding = result.expect(technique="dns.injection", target="google.com")
    assert finding.location is not None
    location = finding.location.to_json()
    assert location.get("ttl_copying") is not True
    assert (location["hop"], location["router"]) == (3, ROUTERS[1])
