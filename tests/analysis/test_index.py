"""The observation index: per target its attempts, controls and TTL-limited repeats, in time order."""

from __future__ import annotations

from pathlib import Path

from fingerprint.analysis.outcome import Outcome
from fingerprint.testing import replay
from fingerprint.testing.craft import Capture

SERVER = "203.0.113.10"
OTHER_SERVER = "203.0.113.20"
RESOLVER = "203.0.113.53"
ROUTER = "198.51.100.1"


def _capture(tmp: Path) -> Path:
    cap = Capture(seed=5)
    cap.dns(RESOLVER, "example.com", at=0.0).respond(["203.0.113.99"], delay_ms=20, ttl=60)
    cap.dns(RESOLVER, "twitter.com", at=0.1).respond(["10.10.34.35"], delay_ms=20, ttl=60)
    cap.dns(RESOLVER, "twitter.com", at=0.2, ttl=1).expire(ROUTER, delay_ms=1)
    t = 1.0
    for sni, ttl in [("twitter.com", None), ("example.com", None), ("twitter.com", 2),
                     ("twitter.com", None)]:
        flow = cap.tcp(SERVER, 443, at=t)
        flow.handshake()
        flow.client_hello(sni, ttl=ttl)
        if sni == "twitter.com":
            flow.inject("RA", at_ms=3, ttl=120, ip_id=0)
        else:
            flow.server_hello()
        t += 1.0
    # The same name on another address is a target there, with no control.
    other = cap.tcp(OTHER_SERVER, 443, at=t)
    other.handshake()
    other.client_hello("twitter.com")
    other.server_hello()
    return cap.write(tmp / "capture.pcapng")


def test_attempts_controls_and_repeats_in_time_order(tmp_path: Path) -> None:
    result = replay(_capture(tmp_path)).result
    assert result.pipeline is not None
    index = result.pipeline.index

    mine, controls = index.tcp_attempts("twitter.com")
    assert [f.first_ts for f in mine] == sorted(f.first_ts for f in mine)
    assert [(f.server, f.trigger_name) for f in mine] == [(SERVER, "twitter.com")] * 3 + [
        (OTHER_SERVER, "twitter.com")]
    assert [(f.server, f.trigger_name) for f in controls] == [(SERVER, "example.com")]
    assert [index.tcp_limited(f) for f in mine] == [False, True, False, False]
    assert [index.outcome(f).kind for f in mine] == [Outcome.RESET] * 3 + [Outcome.TLS_OK]

    exchanges, dns_controls = index.dns_attempts("twitter.com")
    assert [ex.qname for ex in exchanges] == ["twitter.com", "twitter.com"]
    assert [index.dns_limited(ex) for ex in exchanges] == [False, True]
    assert [ex.qname for ex in dns_controls] == ["example.com"]

    # An address as target: its flows on every port; controls are control addresses.
    by_address, _ = index.tcp_attempts(SERVER)
    assert len(by_address) == 4
    assert index.clients() == {"198.51.100.10"}
