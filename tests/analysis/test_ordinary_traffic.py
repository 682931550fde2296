"""Ordinary, uncensored client traffic the tool did not make (a browser under tcpdump): no
platform may come out blocked.  Each case crafts one normal TCP/TLS/HTTP/QUIC/DNS
behaviour with every platform reachable.  The behaviours that read as blocked before
have fixtures of their own in pcaps/false-positive/ (idle-keepalive,
capture-starts-mid-session, happy-eyeballs, ipv6-broken-path, preconnect-idle-close,
redirect-within-platform, tls-incomplete-chain, dns-*); the censored counterparts at the
end check that the rules that clear them still report a censor."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from fingerprint.testing import replay
from fingerprint.testing.craft import (
    Capture,
    TcpFlow,
    app_data,
    client_hello,
    http_response,
    server_flight,
)

CLIENT, RESOLVER = "192.168.1.23", "192.168.1.1"
TWITTER, FACEBOOK, YOUTUBE = "104.244.42.65", "157.240.1.35", "142.250.185.78"
CONTROL = "203.0.113.99"


def _capture(seed: int) -> Capture:
    return Capture(seed=seed, client=CLIENT, client6="2001:db8:1::23")


def _dns(cap: Capture, name: str, addresses: list[str], at: float, *, qtype: str = "A",
         cnames: tuple[str, ...] = ()) -> None:
    cap.dns(RESOLVER, name, at=at, qtype=qtype).respond(addresses, delay_ms=12, ttl=64,
                                                        cnames=cnames)


def _tls(cap: Capture, server: str, sni: str, at: float, *, close_ms: float | None = 300.0,
         server_ttl: int = 56) -> TcpFlow:
    """A browser's HTTPS connection: handshake, ClientHello, flight, a request and a reply."""
    flow = cap.tcp(server, 443, at=at, server_ttl=server_ttl, rtt_ms=30)
    flow.handshake()
    flow.client_hello(sni)
    flow.server_hello()
    flow.send(app_data(400), gap_ms=35)
    flow.server_send(app_data(3000), at_ms=70)
    flow.client_ack(at_ms=71)
    if close_ms is not None:
        flow.client_close(at_ms=close_ms, rst=True)
    return flow


def _alert(description: int) -> bytes:
    return b"\x15\x03\x03\x00\x02\x02" + bytes([description])


def _end(cap: Capture, at: float) -> None:
    """A last packet `at` s on: everything before it had its answer due."""
    cap.dns(RESOLVER, "end.invalid", at=at)


# --------------------------------------------------------------------------- TCP / TLS

def server_idle_fin_after_eviction() -> Capture:
    cap = _capture(1)
    _dns(cap, "twitter.com", [TWITTER], 0.0)
    for n in range(3):
        flow = _tls(cap, TWITTER, "twitter.com", 0.1 + n * 0.01, close_ms=None)
        flow.server_close(at_ms=65_000 + n)  # an idle keep-alive timeout, past 30 s
        flow.client_close(at_ms=65_031 + n)
    return cap


def server_idle_reset_after_eviction() -> Capture:
    """A load balancer dropping idle connections with an RST after 90 s."""
    cap = _capture(37)
    _dns(cap, "www.facebook.com", [FACEBOOK], 0.0)
    for n in range(3):
        flow = _tls(cap, FACEBOOK, "www.facebook.com", 0.1 + n * 0.01, close_ms=None)
        flow.inject("R", at_ms=90_000 + n, ttl=56, ip_id=0, df=True)
    _end(cap, 100.0)
    return cap


def capture_starts_mid_session() -> Capture:
    """Connections opened before tcpdump started: data, then the client's RST."""
    cap = _capture(2)
    for n in range(4):
        flow = cap.tcp(FACEBOOK, 443, at=0.0, server_ttl=56)
        flow.trigger_ts = n * 0.2
        flow.client_ack(at_ms=0)
        flow.server_send(app_data(200), at_ms=30)
        flow.client_close(at_ms=8000, rst=True)
    _tls(cap, FACEBOOK, "www.facebook.com", 1.0)
    _end(cap, 20.0)
    return cap


def capture_starts_with_resets() -> Capture:
    """Only the RSTs of connections opened before the capture: no attempts to connect."""
    cap = _capture(3)
    for n in range(5):
        flow = cap.tcp(FACEBOOK, 443, at=0.0, server_ttl=56)
        flow.trigger_ts = n * 0.2
        flow.client_close(at_ms=1000, rst=True)
    _tls(cap, FACEBOOK, "www.facebook.com", 3.0)
    _end(cap, 20.0)
    return cap


def alert_unrecognized_name_for_control() -> Capture:
    cap = _capture(4)
    _dns(cap, "twitter.com", [TWITTER], 0.0)
    _tls(cap, TWITTER, "twitter.com", 0.1)
    flow = cap.tcp(TWITTER, 443, at=0.5, server_ttl=56)
    flow.handshake()
    flow.client_hello("example.com")
    flow.server_send(_alert(112), at_ms=31)
    flow.server_close(at_ms=31.2)
    flow.client_close(at_ms=32)
    return cap


def alert_protocol_version_then_fin() -> Capture:
    """A TLS 1.3-only server refusing the offered version, then closing."""
    cap = _capture(5)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.server_send(_alert(70), at_ms=31)
        flow.server_close(at_ms=31.1)
        flow.client_close(at_ms=32)
    return cap


def alert_then_server_reset() -> Capture:
    cap = _capture(6)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.server_send(_alert(40), at_ms=31)
        flow.inject("RA", at_ms=31.1, ttl=56, ip_id=0, df=True)
    return cap


def goaway_then_fin() -> Capture:
    """HTTP/2 GOAWAY (an encrypted record) and the server's FIN 20 s after the exchange."""
    cap = _capture(7)
    for n in range(3):
        flow = _tls(cap, YOUTUBE, "www.youtube.com", 0.1 + n * 0.01, close_ms=None,
                    server_ttl=118)
        flow.server_send(app_data(30), at_ms=20_000)
        flow.server_close(at_ms=20_000.2)
        flow.client_close(at_ms=20_001, rst=True)
    _end(cap, 80.0)
    return cap


def server_idle_fin_after_handshake() -> Capture:
    cap = _capture(8)
    for n in range(3):
        flow = cap.tcp(FACEBOOK, 443, at=0.1 + n * 0.01, server_ttl=56)
        flow.handshake()
        flow.client_hello("www.facebook.com")
        flow.server_hello()
        flow.send(app_data(80), gap_ms=35)
        flow.server_close(at_ms=10_000)
        flow.client_close(at_ms=10_001)
    return cap


def preconnect_unused() -> Capture:
    cap = _capture(9)
    for n in range(4):
        flow = cap.tcp(FACEBOOK, 443, at=0.1 + n * 0.01, server_ttl=56)
        flow.handshake()
        flow.client_close(at_ms=10_000)
        flow.server_close(at_ms=10_030)
    _tls(cap, FACEBOOK, "www.facebook.com", 0.2, close_ms=3000)
    return cap


def preconnect_closed_by_server() -> Capture:
    cap = _capture(10)
    for n in range(4):
        flow = cap.tcp(FACEBOOK, 443, at=0.1 + n * 0.01, server_ttl=56)
        flow.handshake()
        flow.server_close(at_ms=10_000)
        flow.client_close(at_ms=10_001)
    _tls(cap, FACEBOOK, "www.facebook.com", 0.2, close_ms=3000)
    return cap


def client_hello_lost_once() -> Capture:
    cap = _capture(11)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.retransmit(at_ms=220)
        flow.server_hello(at_ms=250)
        for dup in range(3):
            flow.client_ack(at_ms=251 + dup)
        flow.client_close(at_ms=900, rst=True)
    return cap


def server_segments_out_of_order() -> Capture:
    """The flight's first segment lost and resent after the later ones (dup ACKs)."""
    cap = _capture(12)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        data = server_flight(cap.rng) + app_data(3000)
        start = flow.server_seq
        flow.server_seq = (start + 1400) & 0xFFFFFFFF
        flow.server_send(data[1400:], at_ms=32)
        flow.client_ack(at_ms=33)
        end = flow.server_seq
        flow.server_seq = start
        flow.server_send(data[:1400], at_ms=250)
        flow.server_seq = end
        flow.client_ack(at_ms=251)
        flow.client_close(at_ms=600, rst=True)
    return cap


def merged_large_segments() -> Capture:
    """GRO/TSO: the server's flight and data in one 30 kB segment."""
    cap = _capture(13)
    for n in range(2):
        flow = cap.tcp(YOUTUBE, 443, at=0.1 + n, server_ttl=118)
        flow.handshake()
        flow.client_hello("www.youtube.com")
        data = server_flight(cap.rng) + app_data(30_000)
        flow._from_server(flow._after(30), "PA", data)
        flow.server_seq = (flow.server_seq + len(data)) & 0xFFFFFFFF
        flow.client_ack(at_ms=31)
        flow.client_close(at_ms=500, rst=True)
    return cap


def client_hello_in_two_segments() -> Capture:
    cap = _capture(14)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        hello = client_hello("twitter.com", cap.rng)
        flow.send(hello[:100])
        flow.send(hello[100:])
        flow.server_hello(at_ms=40)
        flow.client_close(at_ms=300, rst=True)
    return cap


def slow_server() -> Capture:
    cap = _capture(15)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.retransmit(at_ms=1000)
        flow.server_hello(at_ms=3200)
        flow.client_close(at_ms=3500, rst=True)
    return cap


def zero_rtt_early_data() -> Capture:
    """A resumed TLS 1.3 session: the ClientHello followed at once by early data."""
    cap = _capture(29)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.send(app_data(350), gap_ms=0.05)
        flow.server_hello(at_ms=31)
        flow.server_send(app_data(2000), at_ms=33)
        flow.client_close(at_ms=400, rst=True)
    return cap


def hello_retry_request() -> Capture:
    """The server asks for another key share (HelloRetryRequest, a ServerHello with the
    RFC 8446 4.1.3 random); the client sends a second ClientHello."""
    hrr_random = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
    hello = (b"\x03\x03" + hrr_random + b"\x00" + b"\x13\x01" + b"\x00"
             + b"\x00\x06" + b"\x00\x2b\x00\x02\x03\x04")
    record = b"\x02" + len(hello).to_bytes(3, "big") + hello
    hrr = b"\x16\x03\x03" + len(record).to_bytes(2, "big") + record
    cap = _capture(30)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.server_send(hrr, at_ms=31)
        flow.send(client_hello("twitter.com", cap.rng), gap_ms=32)
        flow.server_hello(at_ms=64)
        flow.client_close(at_ms=400, rst=True)
    return cap


def http_keepalive_reuse_raced() -> Capture:
    """A request on a kept-alive HTTP connection after 40 s idle meets the server's idle
    close (RST); the browser retries on a new connection (RFC 9112 9.3.1)."""
    cap = _capture(16)
    _dns(cap, "www.facebook.com", [FACEBOOK], 0.0)
    moved = http_response(301, "Moved Permanently", [("Location", "https://www.facebook.com/")])
    flow = cap.tcp(FACEBOOK, 80, at=0.1, server_ttl=56)
    flow.handshake()
    flow.http_get("www.facebook.com")
    flow.http_reply(moved, close=False)
    flow.client_ack(at_ms=80)
    flow.send(b"GET /x HTTP/1.1\r\nHost: www.facebook.com\r\n\r\n", gap_ms=40_000)
    flow.inject("R", at_ms=40_030, ttl=56, ip_id=0, df=True)
    retry = cap.tcp(FACEBOOK, 80, at=40.2, server_ttl=56)
    retry.handshake()
    retry.http_get("www.facebook.com", "/x")
    retry.http_reply(moved)
    return cap


def http_408_on_idle_keepalive() -> Capture:
    cap = _capture(17)
    flow = cap.tcp(TWITTER, 80, at=0.1, server_ttl=56)
    flow.handshake()
    flow.http_get("twitter.com")
    flow.http_reply(http_response(301, "Moved Permanently",
                                  [("Location", "https://twitter.com/")]), close=False)
    flow.server_send(http_response(408, "Request Timeout", [("Connection", "close")]),
                     at_ms=20_000, fin=True)
    return cap


def _redirect(seed: int, host: str, address: str, location: str) -> Capture:
    cap = _capture(seed)
    _dns(cap, host, [address], 0.0)
    for n in range(2):
        flow = cap.tcp(address, 80, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.http_get(host)
        flow.http_reply(http_response(302, "Found", [("Location", location)]))
    return cap


def redirect_to_consent_page() -> Capture:
    """Google's EU consent page, on another name under google.com."""
    return _redirect(18, "www.google.com", "142.250.185.100",
                     "https://consent.google.com/ml?continue=https://www.google.com/&gl=DE")


def redirect_to_web_client() -> Capture:
    return _redirect(19, "www.whatsapp.com", "157.240.1.53", "https://web.whatsapp.com/")


def happy_eyeballs_ipv6_reset_by_client() -> Capture:
    """The losing IPv6 attempt closed with an RST by the client (some stacks do)."""
    cap = _capture(20)
    six = "2a03:2880:f10c:83:face:b00c:0:25de"
    _dns(cap, "www.facebook.com", [FACEBOOK], 0.0)
    _dns(cap, "www.facebook.com", [six], 0.0, qtype="AAAA")
    for n in range(2):
        attempt = cap.tcp(six, 443, at=0.1 + n * 5).syn_abandoned()
        attempt.client_close(at_ms=350, rst=True)
        _tls(cap, FACEBOOK, "www.facebook.com", 0.4 + n * 5)
    return cap


def ipv6_no_route_from_home_router() -> Capture:
    """The home router has no IPv6 upstream: ICMPv6 no-route to each IPv6 SYN; IPv4 works."""
    cap = _capture(38)
    six = "2a03:2880:f10c:83:face:b00c:0:25de"
    _dns(cap, "www.facebook.com", [FACEBOOK], 0.0)
    _dns(cap, "www.facebook.com", [six], 0.0, qtype="AAAA")
    for n in range(2):
        cap.tcp(six, 443, at=0.1 + n * 5).syn_unreachable("2001:db8:1::1", code=0, ttl=64)
        _tls(cap, FACEBOOK, "www.facebook.com", 0.12 + n * 5)
    return cap


def dual_stack_both_work() -> Capture:
    cap = _capture(27)
    six = "2a00:1450:4001:82a::200e"
    _dns(cap, "www.youtube.com", [YOUTUBE], 0.0, cnames=("youtube-ui.l.google.com",))
    _dns(cap, "www.youtube.com", [six], 0.0, qtype="AAAA", cnames=("youtube-ui.l.google.com",))
    _tls(cap, six, "www.youtube.com", 0.1, server_ttl=118)
    _tls(cap, YOUTUBE, "www.youtube.com", 0.5, server_ttl=118)
    return cap


def cname_into_an_uncatalogued_cdn() -> Capture:
    """www.tiktok.com through CNAMEs to a CDN address the catalog does not list (TLS 1.3:
    no certificate to check it)."""
    cap = _capture(28)
    cdn = "23.50.1.10"
    _dns(cap, "www.tiktok.com", [cdn], 0.0,
         cnames=("www.tiktok.com.edgesuite.net", "a1234.dscb.akamai.net"))
    _tls(cap, cdn, "www.tiktok.com", 0.1)
    return cap


# --------------------------------------------------------------------------- DNS

def aaaa_nodata_with_control() -> Capture:
    cap = _capture(21)
    _dns(cap, "example.com", [CONTROL], 0.0)
    _dns(cap, "twitter.com", [TWITTER], 0.1)
    _dns(cap, "twitter.com", [], 0.1, qtype="AAAA")
    _tls(cap, TWITTER, "twitter.com", 0.3)
    return cap


def aaaa_servfail_while_a_resolves() -> Capture:
    """RFC 4074 4.3: a server answering AAAA queries with SERVFAIL; A resolves."""
    cap = _capture(39)
    _dns(cap, "example.com", [CONTROL], 0.0)
    _dns(cap, "www.facebook.com", [FACEBOOK], 0.1)
    cap.dns(RESOLVER, "www.facebook.com", at=0.1, qtype="AAAA").respond([], delay_ms=9, ttl=64,
                                                                      flags=0x8182)
    _tls(cap, FACEBOOK, "www.facebook.com", 0.3)
    return cap


def rotated_answers_of_the_platform() -> Capture:
    """A retransmitted query answered twice by an anycast resolver, with the platform's
    own (catalog) addresses that differ, no CNAME, and different IP TTLs."""
    cap = _capture(22)
    query = cap.dns("8.8.8.8", "www.youtube.com", at=0.1)
    cap.emit(1.1, query.raw)
    query.respond([YOUTUBE], delay_ms=1020, ttl=117)
    query.respond(["142.250.185.110"], delay_ms=1035, ttl=119)
    _tls(cap, YOUTUBE, "www.youtube.com", 1.2)
    return cap


def local_stub_and_upstream() -> Capture:
    """tcpdump -i any: the query to systemd-resolved's stub and its upstream query."""
    cap = _capture(23)
    cap.client = "127.0.0.1"
    stub = cap.dns("127.0.0.53", "www.facebook.com", at=0.1)
    cap.client = CLIENT
    upstream = cap.dns(RESOLVER, "www.facebook.com", at=0.1005)
    upstream.respond([FACEBOOK], delay_ms=12, ttl=64, cnames=["star-mini.c10r.facebook.com"])
    stub.respond([FACEBOOK], delay_ms=13, ttl=64, cnames=["star-mini.c10r.facebook.com"])
    _tls(cap, FACEBOOK, "www.facebook.com", 0.3)
    return cap


def every_packet_twice() -> Capture:
    """A capture on an interface that sees each packet twice (a bridge and its port)."""
    cap = _capture(24)
    _dns(cap, "twitter.com", [TWITTER], 0.1)
    _tls(cap, TWITTER, "twitter.com", 0.3)
    cap.frames = [frame for frame in cap.frames for _copy in range(2)]
    return cap


def doh_only() -> Capture:
    cap = _capture(25)
    _tls(cap, "8.8.8.8", "dns.google", 0.0, close_ms=None)
    _tls(cap, FACEBOOK, "www.facebook.com", 0.3)
    return cap


def formerr_then_retry() -> Capture:
    cap = _capture(26)
    cap.dns(RESOLVER, "twitter.com", at=0.1).respond([], delay_ms=5, ttl=64, flags=0x8181)
    _dns(cap, "twitter.com", [TWITTER], 0.2)
    _tls(cap, TWITTER, "twitter.com", 0.3)
    return cap


# --------------------------------------------------------------------------- QUIC

def _retry(cap: Capture, scid: bytes) -> bytes:
    rng = cap.rng
    return (b"\xf0" + struct.pack("!I", 1) + b"\x08" + scid + b"\x08" + rng.randbytes(8)
            + rng.randbytes(40) + rng.randbytes(16))


def _version_negotiation(cap: Capture, scid: bytes) -> bytes:
    rng = cap.rng
    return (b"\x80\x00\x00\x00\x00\x08" + scid + b"\x08" + rng.randbytes(8)
            + struct.pack("!II", 1, 0x6B3343CF))


def _handshake_only(cap: Capture, scid: bytes) -> bytes:
    body = cap.rng.randbytes(60)
    return (b"\xe0" + struct.pack("!I", 1) + b"\x08" + scid + b"\x08" + cap.rng.randbytes(8)
            + bytes([0x40, len(body)]) + body)


def quic_retry_then_handshake() -> Capture:
    cap = _capture(31)
    flow = cap.quic(YOUTUBE, at=0.1, server_ttl=118)
    flow.initial("www.youtube.com")
    flow.server_datagram(_retry(cap, flow.scid), at_s=0.03)
    flow.initial("www.youtube.com", at_s=0.031)
    flow.answer(at_s=0.06)
    return cap


def quic_retry_then_tcp() -> Capture:
    cap = _capture(32)
    flow = cap.quic(YOUTUBE, at=0.1, server_ttl=118)
    flow.initial("www.youtube.com")
    flow.server_datagram(_retry(cap, flow.scid), at_s=0.03)
    _tls(cap, YOUTUBE, "www.youtube.com", 0.35, server_ttl=118)
    return cap


def quic_version_negotiation() -> Capture:
    cap = _capture(33)
    flow = cap.quic(FACEBOOK, at=0.1)
    flow.initial("www.facebook.com", version=0x6B3343CF)
    flow.server_datagram(_version_negotiation(cap, flow.scid), at_s=0.03)
    flow.initial("www.facebook.com", at_s=0.04)
    flow.answer(at_s=0.07)
    return cap


def quic_handshake_packets_only() -> Capture:
    """The server's Initial lost: only its (coalesced) Handshake packets arrive."""
    cap = _capture(34)
    for n in range(2):
        flow = cap.quic(FACEBOOK, at=0.1 + n)
        flow.initial("www.facebook.com")
        flow.server_datagram(_handshake_only(cap, flow.scid), at_s=0.03)
    return cap


def udp_443_blocked_by_local_firewall() -> Capture:
    """Every QUIC Initial unanswered, whatever the address; TCP works (a network that
    forbids QUIC): no control SNI on the same address, so no QUIC verdict."""
    cap = _capture(35)
    for name, address in (("www.facebook.com", FACEBOOK), ("www.youtube.com", YOUTUBE)):
        for n in range(2):
            flow = cap.quic(address, at=0.1 + n * 0.3)
            flow.initial(name)
            flow.initial(name, at_s=0.3)
        _tls(cap, address, name, 0.4)
    _end(cap, 10.0)
    return cap


def quic_migration() -> Capture:
    cap = _capture(36)
    flow = cap.quic(YOUTUBE, at=0.1, server_ttl=118)
    flow.initial("www.youtube.com")
    flow.answer()
    moved = cap.quic(YOUTUBE, at=5.0, server_ttl=118)
    moved.datagram(b"\x41" + b"\x00" * 40, at_s=0.0)
    moved.server_datagram(b"\x41" + b"\x00" * 40, at_s=0.03)
    _end(cap, 20.0)
    return cap


ORDINARY: list[Callable[[], Capture]] = [
    server_idle_fin_after_eviction, server_idle_reset_after_eviction,
    capture_starts_mid_session, capture_starts_with_resets,
    alert_unrecognized_name_for_control, alert_protocol_version_then_fin,
    alert_then_server_reset, goaway_then_fin, server_idle_fin_after_handshake,
    preconnect_unused, preconnect_closed_by_server, client_hello_lost_once,
    server_segments_out_of_order, merged_large_segments, client_hello_in_two_segments,
    slow_server, zero_rtt_early_data, hello_retry_request, http_keepalive_reuse_raced,
    http_408_on_idle_keepalive, redirect_to_consent_page, redirect_to_web_client,
    happy_eyeballs_ipv6_reset_by_client, ipv6_no_route_from_home_router, dual_stack_both_work,
    cname_into_an_uncatalogued_cdn, aaaa_nodata_with_control, aaaa_servfail_while_a_resolves,
    rotated_answers_of_the_platform, local_stub_and_upstream, every_packet_twice, doh_only,
    formerr_then_retry, quic_retry_then_handshake, quic_retry_then_tcp,
    quic_version_negotiation, quic_handshake_packets_only, udp_443_blocked_by_local_firewall,
    quic_migration,
]


@pytest.mark.parametrize("build", ORDINARY, ids=lambda b: b.__name__)
def test_ordinary_traffic_is_not_blocked(build: Callable[[], Capture], tmp_path: Path) -> None:
    run = replay(build().write(tmp_path / "capture.pcapng"))
    statuses = {p["platform"]: p["status"] for p in run.report["platforms"]}
    assert statuses, "the capture names no platform"
    assert "blocked" not in statuses.values(), (statuses, run.findings)


# --------------------------------------------------------------------------- censored stays censored

def test_injected_reset_on_an_idle_connection_stays_a_reset(tmp_path: Path) -> None:
    """An injector's RST acknowledges the trigger it reacted to: a connection idle before
    its ClientHello does not make it the server's idle close."""
    cap = _capture(41)
    _tls(cap, TWITTER, "example.com", 0.0)
    for n in range(2):
        flow = cap.tcp(TWITTER, 443, at=1.0 + n, server_ttl=56)
        flow.handshake()
        flow.t += 8.0
        flow.client_hello("twitter.com")
        flow.inject("RA", at_ms=5, ttl=101, ip_id=0, df=False)
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="tls.sni_reset")


def test_ipv6_blackhole_with_an_ipv6_control_stays(tmp_path: Path) -> None:
    cap = _capture(42)
    _dns(cap, "example.com", ["2001:db8:99::1"], 0.0, qtype="AAAA")
    _tls(cap, "2001:db8:99::1", "example.com", 0.1)
    _dns(cap, "www.facebook.com", ["2a03:2880:f10c:83:face:b00c:0:25de"], 0.5, qtype="AAAA")
    _dns(cap, "www.facebook.com", [FACEBOOK], 0.5)
    for n in range(2):
        cap.tcp("2a03:2880:f10c:83:face:b00c:0:25de", 443, at=1.0 + n * 5).syn_unanswered()
    _tls(cap, FACEBOOK, "www.facebook.com", 12.0)
    finding = replay(_write_end(cap, tmp_path, 30.0)).expect(technique="ip.blackhole")
    assert finding.confidence >= 0.9


def test_single_syn_without_another_connection_stays_a_blackhole(tmp_path: Path) -> None:
    """One SYN and no retransmission is Happy Eyeballs only when the client connected to
    another address of the site instead."""
    cap = _capture(43)
    _dns(cap, "example.com", [CONTROL], 0.0)
    _tls(cap, CONTROL, "example.com", 0.1)
    _dns(cap, "twitter.com", [TWITTER], 0.5)
    for n in range(2):
        cap.tcp(TWITTER, 443, at=1.0 + n * 3).syn_abandoned()
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="ip.blackhole")


def test_racing_injection_with_a_retransmitted_query_stays(tmp_path: Path) -> None:
    """A query sent twice: the injector's answers (no CNAME, another IP TTL) race the
    resolver's: still dns.injection."""
    cap = _capture(44)
    _dns(cap, "example.com", [CONTROL], 0.0)
    query = cap.dns(RESOLVER, "www.youtube.com", at=0.5)
    cap.emit(1.5, query.raw)
    query.respond(["203.0.113.200"], delay_ms=4, ttl=101, ip_id=0, df=False)
    query.respond([YOUTUBE], delay_ms=1030, ttl=64, cnames=["youtube-ui.l.google.com"])
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="dns.injection")


def test_consistent_servfail_with_a_resolving_control_stays(tmp_path: Path) -> None:
    cap = _capture(45)
    _dns(cap, "example.com", [CONTROL], 0.0)
    for n in range(2):
        cap.dns(RESOLVER, "www.facebook.com", at=0.5 + n).respond([], delay_ms=8, ttl=64,
                                                                  flags=0x8182)
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="dns.error")


def test_midstream_fragments_do_not_hide_a_blackhole(tmp_path: Path) -> None:
    """Keep-alive fragments of earlier connections are no attempts either way: the SYNs
    that went unanswered still make ip.blackhole against a working control."""
    cap = _capture(46)
    _dns(cap, "example.com", [CONTROL], 0.0)
    _tls(cap, CONTROL, "example.com", 0.1)
    _dns(cap, "twitter.com", [TWITTER], 0.5)
    for n in range(2):
        cap.tcp(TWITTER, 443, at=1.0 + n * 5).syn_unanswered()
    for n in range(3):
        fragment = cap.tcp(TWITTER, 443, at=0.0)
        fragment.trigger_ts = 12.0 + n
        fragment.keepalive(at_ms=0)
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="ip.blackhole")


def _write_end(cap: Capture, tmp_path: Path, at: float) -> Path:
    _end(cap, at)
    return cap.write(tmp_path / "capture.pcapng")


@pytest.mark.parametrize("snaplen", [68, 96, 200])
def test_short_snaplen_is_not_blocked(snaplen: int, tmp_path: Path) -> None:
    """tcpdump -s N: every frame cut to N bytes (headers, a little payload or none)."""
    cap = _capture(47)
    _dns(cap, "example.com", [CONTROL], 0.0)
    _dns(cap, "twitter.com", [TWITTER], 0.0)
    body = b"<html>" + b"x" * 3000
    for n in range(2):
        flow = cap.tcp(TWITTER, 80, at=0.1 + n, server_ttl=56)
        flow.handshake()
        flow.http_get("twitter.com")
        flow.http_reply(http_response(301, "Moved Permanently",
                                      [("Location", "https://twitter.com/")], body))
        flow.client_ack(at_ms=80)
        _tls(cap, TWITTER, "twitter.com", 2.1 + n)
    path = tmp_path / "capture.pcap"
    with path.open("wb") as out:  # classic pcap, Ethernet, frames cut to `snaplen`
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        for ts, data in cap.frames:
            frame = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + data
            cut = frame[:snaplen]
            seconds = int(ts)
            out.write(struct.pack("<IIII", seconds, round((ts - seconds) * 1e6), len(cut),
                                  len(frame)) + cut)
    statuses = {p["platform"]: p["status"] for p in replay(path).report["platforms"]}
    assert "blocked" not in statuses.values(), statuses


def test_reset_syn_beside_another_working_address_stays(tmp_path: Path) -> None:
    """A RST to the SYN is an answer: the client moving on to another address of the
    site does not make it an abandoned Happy Eyeballs attempt."""
    cap = _capture(48)
    _dns(cap, "example.com", [CONTROL], 0.0)
    _tls(cap, CONTROL, "example.com", 0.1)
    _dns(cap, "twitter.com", [TWITTER, "104.244.42.1"], 0.5)
    for n in range(2):
        cap.tcp(TWITTER, 443, at=1.0 + n * 3).syn_refused(ttl=120, ip_id=4321, df=False,
                                                          delay_ms=3)
        _tls(cap, "104.244.42.1", "twitter.com", 1.01 + n * 3)
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="ip.reset")


def test_unanswered_name_beside_answered_names_of_its_type_stays_a_drop(tmp_path: Path) -> None:
    """No control name, but the resolver answered other A queries: an A query left
    unanswered is still dns.drop (the same-type comparison keeps it)."""
    cap = _capture(49)
    _dns(cap, "www.wikipedia.org", ["185.15.59.224"], 0.0)
    _dns(cap, "www.google.com", ["142.250.185.100"], 0.5)
    for n in range(2):
        cap.dns(RESOLVER, "twitter.com", at=1.0 + n * 5)
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="dns.drop")


def test_nxdomain_for_every_type_stays(tmp_path: Path) -> None:
    """NXDOMAIN for the A and the AAAA query alike, the control resolving: dns.nxdomain."""
    cap = _capture(50)
    _dns(cap, "example.com", [CONTROL], 0.0)
    for qtype in ("A", "AAAA"):
        cap.dns(RESOLVER, "twitter.com", at=1.0, qtype=qtype).respond([], delay_ms=9, ttl=64,
                                                                     flags=0x8183)
    replay(_write_end(cap, tmp_path, 30.0)).expect(technique="dns.nxdomain")
