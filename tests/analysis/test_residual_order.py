"""Residual blocking read from the order of events, with QUIC and ECH probing on (issue 14).

Crafted captures of what the lab's injector-residual scenario does to a probe run: a
slow on-path injector resets a twitter.com ClientHello 50 ms late, then resets every
web connection from the client's address for a while.

* Connections begun between the trigger and the censor's reaction get through (the
  block is not yet in force): they do not show the block let something through, so
  the later resets on other addresses are the block's, not ip.reset of those addresses.
* An address first tried while the client's whole address is blocked cannot show it is
  blocked for its own sake: inconclusive, not ip.reset.
* A ClientHello with GREASE ECH and the outer SNI twitter.com is a trigger too: when the
  ECH probe's ClientHello draws the injector first, the resets that follow are its block's.
"""

from __future__ import annotations

from pathlib import Path

from fingerprint.testing import replay
from fingerprint.testing.craft import Capture, TcpFlow, http_response

TWITTER = "203.0.113.10"
FACEBOOK = "203.0.113.20"
TELEGRAM = "203.0.113.30"
CONTROL = "203.0.113.99"
CATALOG = f"""platforms:
  twitter:
    name: Twitter / X
    domains: [twitter.com]
    addresses: [{TWITTER}]
  facebook:
    name: Facebook
    domains: [facebook.com]
    addresses: [{FACEBOOK}]
  telegram:
    name: Telegram
    domains: [telegram.org]
    addresses: [{TELEGRAM}]
control:
  domains: [example.com]
  addresses: [{CONTROL}]
"""
PAGE = http_response(200, "OK", [("Content-Type", "text/html")], b"<html>hello</html>")


def _tls_ok(cap: Capture, server: str, sni: str, at: float, *, ech: bool = False) -> TcpFlow:
    flow = cap.tcp(server, 443, at=at)
    flow.handshake()
    flow.client_hello(sni, ech=ech)
    flow.server_hello()
    flow.client_close(at_ms=120)
    return flow


def _http_ok(cap: Capture, server: str, at: float) -> None:
    flow = cap.tcp(server, 80, at=at)
    flow.handshake()
    flow.http_get("example.com")
    flow.http_reply(PAGE)


def _reached(cap: Capture, server: str, at: float) -> None:
    """The controls of an address before any trigger: TLS and HTTP work."""
    _tls_ok(cap, server, "example.com", at)
    _http_ok(cap, server, at + 0.05)


def _control_address(cap: Capture, at: float) -> None:
    for port in (443, 80):
        cap.tcp(CONTROL, port, at=at).handshake().client_close(at_ms=20)


def _trigger(cap: Capture, at: float, *, ech: bool = False, delay_ms: float = 50) -> float:
    """twitter.com's ClientHello: the server answers, the slow injector's RSTs follow.
    Returns the ClientHello's time."""
    flow = cap.tcp(TWITTER, 443, at=at)
    flow.handshake()
    flow.client_hello("twitter.com", ech=ech)
    flow.server_hello()
    flow.inject("R", at_ms=delay_ms, ttl=97, ip_id=0, df=False)
    flow.inject("RA", at_ms=delay_ms + 1, ttl=45, df=False, window=2048)
    assert flow.trigger_ts is not None
    return flow.trigger_ts


def _refused(cap: Capture, server: str, at: float, ports: tuple[int, ...] = (443, 80),
             count: int = 4) -> None:
    """Connections reset at the SYN by the residual block (the injector's TTL)."""
    for i in range(count):
        for j, port in enumerate(ports):
            cap.tcp(server, port, at=at + i * 0.1 + j * 0.02).syn_refused(ttl=61, ip_id=1,
                                                                          df=False)


def _run(tmp_path: Path, cap: Capture) -> Path:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    return cap.write(tmp_path / "capture.pcapng")


def test_connections_begun_before_a_slow_injector_reacted_do_not_end_the_block(
        tmp_path: Path) -> None:
    cap = Capture(seed=141)
    _control_address(cap, 0.0)
    _reached(cap, TWITTER, 0.2)
    _reached(cap, FACEBOOK, 0.4)
    hello = _trigger(cap, 1.0)
    # Begun 20 ms after the ClientHello, before the injector reacted (50 ms): it works.
    _tls_ok(cap, FACEBOOK, "facebook.com", hello + 0.02)
    _refused(cap, FACEBOOK, 2.0)
    _refused(cap, TWITTER, 2.05, ports=(80,))
    result = replay(_run(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="tls.sni_reset", target="twitter.com")
    assert any("later connections from the client to other addresses" in n for n in finding.notes)
    assert result.status("facebook") != "blocked"
    assert not [f for f in result.findings if f.platform == "facebook"]


def test_an_address_first_tried_during_the_clients_block_is_not_ip_reset(tmp_path: Path) -> None:
    cap = Capture(seed=142)
    _control_address(cap, 0.0)
    _reached(cap, TWITTER, 0.2)
    _reached(cap, FACEBOOK, 0.4)
    _trigger(cap, 1.0, delay_ms=5)
    _refused(cap, FACEBOOK, 2.0)
    _refused(cap, TELEGRAM, 2.5)  # never reached before the block
    result = replay(_run(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    result.expect(technique="tls.sni_reset", target="twitter.com")
    assert not [f for f in result.findings if f.platform in ("facebook", "telegram")]
    assert result.status("telegram") == "inconclusive"
    entry = next(p for p in result.report["platforms"] if p["platform"] == "telegram")
    assert any("residual blocking" in t["detail"] for t in entry["tested"] if not t["ok"])


def test_an_ech_clienthello_with_a_target_outer_sni_is_a_trigger(tmp_path: Path) -> None:
    """The ECH probe's ClientHello (GREASE ECH, outer SNI twitter.com) goes before the plain
    one and draws the injector: the resets that follow on facebook's address are the
    block it started, not ip.reset."""
    cap = Capture(seed=143)
    _control_address(cap, 0.0)
    _reached(cap, TWITTER, 0.2)
    _reached(cap, FACEBOOK, 0.4)
    _tls_ok(cap, TWITTER, "example.com", 0.6, ech=True)  # the ECH probe's control
    _trigger(cap, 1.0, ech=True, delay_ms=5)
    _refused(cap, FACEBOOK, 2.0)
    _refused(cap, TWITTER, 2.5)  # the plain twitter.com attempts, reset at the SYN
    result = replay(_run(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    assert not [f for f in result.findings if f.platform == "facebook"]
    assert result.status("facebook") != "blocked"
