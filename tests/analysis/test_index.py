"""The observation index: per target its attempts, controls and TTL-limited repeats, in time order."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import TCP

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


def _bare_syn(cap: Capture, at: float, syn_ttl: int, *, router: str | None = None,
              router_ttl: int = 64, rst_ttl: int = 62) -> None:
    """A SYN with IP TTL `syn_ttl`: expires at `router`, or draws a Linux-shaped RST+ACK."""
    sport = cap.rng.randrange(32768, 61000)
    isn = cap.rng.getrandbits(32)
    raw = cap.emit(at, cap.ip(cap.client, OTHER_SERVER, ttl=syn_ttl)
                   / TCP(sport=sport, dport=443, flags="S", seq=isn, window=64240))
    if router is not None:
        cap.time_exceeded(at + 0.001, router, raw, ttl=router_ttl)
    else:
        cap.emit(at + 0.001, cap.ip(OTHER_SERVER, cap.client, ttl=rst_ttl, ip_id=0, df=True)
                 / TCP(sport=443, dport=sport, flags="RA", seq=0, ack=(isn + 1) & 0xFFFFFFFF,
                       window=0))


def test_a_whole_syn_series_is_kept_whatever_order_it_closes_in(tmp_path: Path) -> None:
    """Issue 13: bare TTL-limited SYNs (the ip.* series) counted with the full-TTL attempts
    filled that cap, so which hops were kept depended on the order the series' concurrent
    SYNs went out; without the hop before the first RST, a firewall's REJECT could not be
    told from a closed port (`reset.before_server`).  Here the decisive hops come last."""
    cap = Capture(seed=7, hints={"address_platform": {OTHER_SERVER: "signal"}})
    cap.dns(RESOLVER, "example.com", at=0.0).respond(["203.0.113.99"], delay_ms=20, ttl=60)
    control = cap.tcp("203.0.113.99", 443, at=0.5)
    control.handshake()
    control.client_hello("example.com")
    control.server_hello()
    for i in range(4):
        cap.tcp(OTHER_SERVER, 443, at=1.0 + i * 0.1).syn_refused(ttl=62, ip_id=0, df=True)
    hops = {1: "198.51.100.1", 2: "198.51.100.2", 3: "198.51.100.6"}
    for i, ttl in enumerate([10, 11, 6, 7, 8, 5, 12, 13, 15, 14, 1, 9, 16, 2, 3, 4]):
        at = 3.0 + i * 0.01
        if ttl in hops:
            _bare_syn(cap, at, ttl, router=hops[ttl], router_ttl=65 - ttl)
        else:
            _bare_syn(cap, at, ttl)
    found = replay(cap.write(tmp_path / "capture.pcapng"))
    [finding] = [f for f in found.findings if f.platform == "signal"]
    assert finding.context.get("reset.before_server") is True
    assert finding.location is not None and finding.location.hop == 4
    assert finding.location.router == "198.51.100.6"
