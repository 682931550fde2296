#!/usr/bin/env python3
"""Regenerate every crafted fixture under pcaps/ (deterministic: fixed seeds and times).

    python scripts/make_fixtures.py            # rebuild all, write expected.json where right
    python scripts/make_fixtures.py --check    # rebuild in a temporary folder, compare only
    python scripts/make_fixtures.py cn/        # only the cases whose path starts with cn/

Each case states what the analysis must conclude (per platform: status and
findings with their signatures), written by hand from the published
behaviour.  The script analyses the capture with the shipped library exactly
as `fingerprint analyze --json` does and writes expected.json ONLY when the
result equals that statement; otherwise it prints both and exits 1, and the
old expected.json stays.  A wrong result is fixed in the analysis, the
signature or the case, never by accepting it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from scapy.layers.inet import TCP

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fingerprint.protocols.dns import build_query  # noqa: E402
from fingerprint.signature import load_library  # noqa: E402
from fingerprint.testing.craft import (  # noqa: E402
    START,
    Capture,
    TcpFlow,
    app_data,
    dns_response,
    http_response,
)
from fingerprint.testing.fixtures import Fixture, install_fixture, verdict_summary  # noqa: E402

CAPTURE_NAME = "capture.pcapng.gz"

# Documentation addresses only (RFC 5737 / RFC 3849).
RESOLVER = "203.0.113.53"
NO_RESOLVER = "203.0.113.77"
SERVER = "203.0.113.10"
SERVER2 = "203.0.113.20"
CONTROL_SERVER = "203.0.113.99"
RESOLVER_TTL = 60    # genuine resolver: initial 64, 4 hops
SERVER_TTL = 52      # genuine web server: initial 64, 12 hops

Expectation = dict[str, tuple[str, list[tuple[str, str, list[str]]]]]


@dataclass
class Case:
    path: str
    title: str
    shows: str
    source: str
    build: Callable[[], Capture]
    expect: Expectation
    extra_files: Callable[[], dict[str, bytes]] | None = None
    notes: list[str] = field(default_factory=list)


CASES: list[Case] = []


def case(path: str, title: str, *, shows: str, source: str, expect: Expectation,
         extra_files: Callable[[], dict[str, bytes]] | None = None) -> Callable[
             [Callable[[], Capture]], Callable[[], Capture]]:
    def register(build: Callable[[], Capture]) -> Callable[[], Capture]:
        CASES.append(Case(path, title, shows, source, build, expect, extra_files))
        return build
    return register


def blocked(*findings: tuple[str, str, list[str]]) -> tuple[str, list[tuple[str, str, list[str]]]]:
    return ("blocked", list(findings))


ACCESSIBLE: tuple[str, list[tuple[str, str, list[str]]]] = ("accessible", [])


# --------------------------------------------------------------------------- helpers

def seed_of(path: str) -> int:
    """A stable seed per case (Python's hash() is salted per process)."""
    return sum((i + 1) * b for i, b in enumerate(path.encode()))


def control_dns(cap: Capture, at: float, resolver: str = RESOLVER,
                answer: str = CONTROL_SERVER) -> None:
    cap.dns(resolver, "example.com", at=at).respond([answer], delay_ms=31, ttl=RESOLVER_TTL)


def control_tls(cap: Capture, at: float, server: str = SERVER,
                chain: tuple[bytes, ...] = ()) -> None:
    """The control SNI on the same server address: a normal handshake."""
    flow = cap.tcp(server, 443, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.client_hello("example.com")
    flow.server_hello(chain)
    flow.client_close(at_ms=120)


def control_http(cap: Capture, at: float, server: str = SERVER) -> None:
    flow = cap.tcp(server, 80, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.http_get("example.com")
    flow.http_reply(http_response(200, "OK", [("Content-Type", "text/html")],
                                  b"<html><body>Example Domain</body></html>"))


def target_tls(cap: Capture, sni: str, at: float, server: str = SERVER) -> TcpFlow:
    flow = cap.tcp(server, 443, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.client_hello(sni)
    return flow


def target_http(cap: Capture, host: str, at: float, server: str = SERVER) -> TcpFlow:
    flow = cap.tcp(server, 80, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.http_get(host)
    return flow


def silent_tls(cap: Capture, sni: str, at: float, server: str = SERVER) -> None:
    """ClientHello retransmitted, never answered; the client gives up after 10 s."""
    flow = target_tls(cap, sni, at, server)
    for at_ms in (300, 900, 2100, 4500):
        flow.retransmit(at_ms=at_ms)
    flow.client_close(at_ms=10_000)


# =========================================================================== China

@case("cn/gfw-dns-ooni-poison", "GFW DNS injection with a published forged address",
      shows="A query for twitter.com draws a forged A 8.7.198.45 after 9 ms (IP TTL 92, no DF), "
            "then the resolver's genuine answer after 183 ms; example.com on the same resolver "
            "is answered once, normally.",
      source="ooni/blocking-fingerprints fingerprints_dns.csv @171641e, row ooni.cn_0 "
             "(8.7.198.45, scope nat, CN)",
      expect={"twitter": blocked(("twitter.com", "dns.injection", ["cn-gfw-dns-ooni-poison"]))})
def cn_dns_ooni_poison() -> Capture:
    cap = Capture(seed=seed_of("cn1"), hints={"probe_cc": "CN"})
    control_dns(cap, 0.0)
    q = cap.dns(RESOLVER, "twitter.com", at=0.5)
    q.respond(["8.7.198.45"], delay_ms=9, ttl=92, df=False, flags=0x8180, answer_ttl=142)
    q.respond(["104.244.42.1"], delay_ms=183, ttl=RESOLVER_TTL)
    return cap


@case("cn/gfw-dns-flags-8580", "GFW DNS injection, 2024-25 injector: header flags 0x8580",
      shows="A query for www.facebook.com draws a forged answer with DNS flags 0x8580 (QR AA RD "
            "RA) before the genuine 0x8180 answer. TTL-limited repeats: TTL 10 and 11 expire at "
            "routers, TTL 12 and 13 already draw the forged answer (the injector sits after hop "
            "11), as in the Beijing trace.",
      source="gfw-report/usenixsecurity25-quic-sni experiments/ttl-location/data/DNS/"
             "beijing-dns-and-traceroute-result.txt (flags 0x8580, injection first at TTL 12)",
      expect={"facebook": blocked(("www.facebook.com", "dns.injection", ["cn-gfw-dns-flags-8580"]))})
def cn_dns_flags_8580() -> Capture:
    cap = Capture(seed=seed_of("cn2"), hints={"probe_cc": "CN"})
    control_dns(cap, 0.0)
    q = cap.dns(RESOLVER, "www.facebook.com", at=0.5)
    q.respond(["104.244.46.52"], delay_ms=11, ttl=117, df=False, flags=0x8580, answer_ttl=60)
    q.respond(["157.240.1.35"], delay_ms=190, ttl=RESOLVER_TTL)
    for i, ttl in enumerate((10, 11, 12, 13)):
        lq = cap.dns(RESOLVER, "www.facebook.com", at=1.0 + i * 0.5, ttl=ttl)
        if ttl < 12:
            lq.expire(f"192.0.2.{ttl}", delay_ms=8 + ttl * 0.5)
        else:
            lq.respond(["104.244.46.52"], delay_ms=11, ttl=117, df=False, flags=0x8580,
                       answer_ttl=60)
            lq.expire(f"192.0.2.{ttl}", delay_ms=12 + ttl * 0.5)
    return cap


@case("cn/gfw-dns-teredo-aaaa", "GFW forged IPv6 answer inside Teredo 2001::/32",
      shows="An AAAA query for www.google.com draws a forged AAAA 2001::1f0d:5a24 (Teredo "
            "prefix) 10 ms after the query, then the resolver's genuine answer in Google's "
            "network.",
      source="Hoang et al., 'How Great is the Great Firewall? Measuring China's DNS "
             "Censorship', USENIX Security 2021 (GFWatch): every forged IPv6 is in 2001::/32",
      expect={"google": blocked(("www.google.com", "dns.injection", ["cn-gfw-dns-teredo-ipv6"]))})
def cn_dns_teredo() -> Capture:
    cap = Capture(seed=seed_of("cn3"), hints={"probe_cc": "CN"})
    cap.dns(RESOLVER, "example.com", at=0.0, qtype="AAAA").respond(
        ["2001:db8:99::1"], delay_ms=30, ttl=RESOLVER_TTL)
    q = cap.dns(RESOLVER, "www.google.com", at=0.5, qtype="AAAA")
    q.respond(["2001::1f0d:5a24"], delay_ms=10, ttl=104, df=False, answer_ttl=242)
    q.respond(["2a00:1450:4001:82b::2004"], delay_ms=170, ttl=RESOLVER_TTL)
    return cap


@case("cn/gfw-dns-non-resolver", "GFW answers a query sent to an address that runs no resolver",
      shows="Queries to 203.0.113.77, recorded by the probe as running no resolver: example.com "
            "gets nothing (as it should), twitter.com gets two different forged answers from "
            "two injectors (public addresses, 7 and 9 ms).",
      source="Anonymous et al., 'Triplet Censors', FOCI 2020 (answers injected for queries sent "
             "from abroad to a Chinese IP that runs no resolver; at least 3 injectors); OONI "
             "Signal report 2021-10-21",
      expect={"twitter": blocked(("twitter.com", "dns.injection", ["cn-gfw-dns-non-resolver"]))})
def cn_dns_non_resolver() -> Capture:
    cap = Capture(seed=seed_of("cn4"), hints={"no_resolver": [NO_RESOLVER]})
    cap.dns(NO_RESOLVER, "example.com", at=0.0)
    q = cap.dns(NO_RESOLVER, "twitter.com", at=2.5)
    q.respond(["157.240.12.35"], delay_ms=7, ttl=229, df=False, answer_ttl=171)
    q.respond(["69.171.248.65"], delay_ms=9, ttl=101, df=False, answer_ttl=288)
    return cap


@case("cn/gfw-rst-type1", "GFW type-1 RST injector: one RST without ACK",
      shows="The ClientHello with SNI twitter.com draws one RST (no ACK flag, IP ID 0, no DF, "
            "TTL 47, window 4863) 9 ms later, and the same toward the server; the control SNI "
            "on the same address gets its ServerHello.",
      source="Wang et al., 'Your State is Not Mine', IMC 2017, sec. 2.1 (type-1 reset: RST only, "
             "random TTL and window); IP ID 0 / no DF as stated in issue 5",
      expect={"twitter": blocked(("twitter.com", "tls.sni_reset", ["cn-gfw-rst-type1"]))})
def cn_rst_type1() -> Capture:
    cap = Capture(seed=seed_of("cn5"), hints={"probe_cc": "CN"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "twitter.com", 1.0)
    flow.inject("R", at_ms=9, ttl=47, ip_id=0, df=False, window=4863)
    flow.inject("R", at_ms=9.1, ttl=47, ip_id=0, df=False, window=4863, toward_server=True)
    return cap


@case("cn/gfw-rst-type2", "GFW type-2 RST injector: three RST+ACK at X, X+1460, X+4380",
      shows="The ClientHello with SNI www.facebook.com draws three RST+ACK 12 ms later, sequence "
            "numbers X, X+1460 and X+4380 (X = the client's expected next sequence number), TTL "
            "and window increasing; the control SNI on the same address works.",
      source="Wang et al., 'Your State is Not Mine', IMC 2017, sec. 2.1 (type-2 resets: 3 "
             "RST/ACK, seq X, X+1460, X+4380, TTL and window cycling upward)",
      expect={"facebook": blocked(("www.facebook.com", "tls.sni_reset", ["cn-gfw-rst-type2"]))})
def cn_rst_type2() -> Capture:
    cap = Capture(seed=seed_of("cn6"), hints={"probe_cc": "CN"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "www.facebook.com", 1.0)
    for i, offset in enumerate((0, 1460, 4380)):
        flow.inject("RA", at_ms=12 + i * 0.05, ttl=104 + i, df=False, window=2617 + i * 7,
                    seq_offset=offset)
    return cap


@case("cn/gfw-rst-type3", "GFW RST+ACK with received TTL 248",
      shows="The ClientHello with SNI www.google.com draws one RST+ACK with received IP TTL 248 "
            "(initial 255) 6 ms later; the control SNI on the same address works.",
      source="Issue 5 of this project (type III: one RST+ACK, TTL 248); gfw-report/sp25-regional "
             "fingerprint/gfw.csv shows GFW SNI resets with received TTLs up to 248 [to re-check]",
      expect={"google": blocked(("www.google.com", "tls.sni_reset", ["cn-gfw-rst-type3"]))})
def cn_rst_type3() -> Capture:
    cap = Capture(seed=seed_of("cn7"), hints={"probe_cc": "CN"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "www.google.com", 1.0)
    flow.inject("RA", at_ms=6, ttl=248, df=False, window=0)
    return cap


@case("cn/henan-rst", "Henan provincial firewall: RST+ACK with a 10-byte payload",
      shows="The ClientHello with SNI www.google.com draws one RST+ACK 2.6 ms later: TTL 58, IP "
            "ID 1, no DF, payload 01 02 03 04 05 06 07 08 09 00; the control SNI works.",
      source="Wu et al., S&P 2025 (gfw-report/sp25-regional fingerprint/henan.csv: 36,475 of "
             "36,479 rows with payload 01020304050607080900, TTL 58, no DF, median 2.6 ms)",
      expect={"google": blocked(("www.google.com", "tls.sni_reset", ["cn-henan-rst"]))})
def cn_henan() -> Capture:
    cap = Capture(seed=seed_of("cn8"), hints={"probe_cc": "CN"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "www.google.com", 1.0)
    flow.inject("RA", at_ms=2.6, ttl=58, ip_id=1, df=False, window=0,
                payload=bytes.fromhex("01020304050607080900"))
    return cap


@case("cn/gfw-residual", "GFW residual block: forged SYN-ACK with another sequence number",
      shows="The first ClientHello with SNI www.facebook.com draws the type-2 RST+ACKs. 3 s "
            "later (inside the ~90 s residual window) the next SYN to the same address and port "
            "draws a forged SYN-ACK (TTL 104, another sequence number) 9 ms before the server's, "
            "and the ClientHello draws RST+ACKs again. The control SNI, tried first, worked.",
      source="Wang et al., 'Your State is Not Mine', IMC 2017, sec. 2.1 (residual block of "
             "about 90 s: a SYN draws a forged SYN/ACK with a wrong sequence number, other "
             "packets draw RSTs); Rambert et al., WWW 2021 (90 s penalty on the 3-tuple)",
      expect={"facebook": blocked(("www.facebook.com", "tls.sni_reset",
                                   ["cn-gfw-residual", "cn-gfw-rst-type2"]))})
def cn_residual() -> Capture:
    cap = Capture(seed=seed_of("cn9"), hints={"probe_cc": "CN"})
    control_tls(cap, 0.0)
    first = target_tls(cap, "www.facebook.com", 1.0)
    for i, offset in enumerate((0, 1460, 4380)):
        first.inject("RA", at_ms=12 + i * 0.05, ttl=104 + i, df=False, window=2617 + i * 7,
                     seq_offset=offset)
    again = cap.tcp(SERVER, 443, at=4.0, server_ttl=SERVER_TTL)
    again.forged_handshake(ttl=104, delay_ms=9, df=False)
    again.client_hello("www.facebook.com")
    for i, offset in enumerate((0, 1460, 4380)):
        again.inject("RA", at_ms=11 + i * 0.05, ttl=105 + i, df=False, window=2631 + i * 7,
                     seq_offset=offset)
    return cap


# =========================================================================== Iran

@case("ir/dns-10-10-34-35", "Iran DNS injection answering 10.10.34.35",
      shows="A query for www.instagram.com is answered once, with A 10.10.34.35, by a packet "
            "whose IP TTL (43) differs from the resolver's own answers (60): the national "
            "injector answered in its place.",
      source="ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.ir_4 10.10.34.34, "
             "ooni.ir_5 10.10.34.35, ooni.ir_10dot10_ipv4_1 10.10.34.36",
      expect={"instagram": blocked(("www.instagram.com", "dns.injection",
                                    ["generic-dns-private", "ir-dns-10-10-34"]))})
def ir_dns_v4() -> Capture:
    cap = Capture(seed=seed_of("ir1"), hints={"probe_cc": "IR"})
    control_dns(cap, 0.0)
    cap.dns(RESOLVER, "www.instagram.com", at=0.5).respond(
        ["10.10.34.35"], delay_ms=14, ttl=43, df=False, answer_ttl=0)
    return cap


@case("ir/dns-ipv6-d0-11", "Iran DNS redirect to the IPv6 address d0::11",
      shows="An AAAA query for www.instagram.com is answered by the resolver with d0::11 "
            "(reserved space); example.com resolves normally.",
      source="ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.ir_ipv6_1 d0::11",
      expect={"instagram": blocked(("www.instagram.com", "dns.redirect", ["ir-dns-ipv6-d0-11"]))})
def ir_dns_v6() -> Capture:
    cap = Capture(seed=seed_of("ir2"), hints={"probe_cc": "IR"})
    cap.dns(RESOLVER, "example.com", at=0.0, qtype="AAAA").respond(
        ["2001:db8:99::1"], delay_ms=30, ttl=RESOLVER_TTL)
    cap.dns(RESOLVER, "www.instagram.com", at=0.5, qtype="AAAA").respond(
        ["d0::11"], delay_ms=29, ttl=RESOLVER_TTL)
    return cap


@case("ir/sni-handshake-failure", "Iran: TLS handshake fails for a blocked SNI",
      shows="From an Iranian vantage point (probe_cc IR), the TCP handshake to the server "
            "completes but the ClientHello with SNI web.telegram.org is never answered; the "
            "control SNI on the same address completes.",
      source="OONI, 'Iran protests: OONI data confirms censorship events (part 2)', 2018 "
             "(Telegram, Instagram: TCP connects, TLS handshake fails; SNI-based DPI)",
      expect={"telegram": blocked(("web.telegram.org", "tls.sni_drop", ["ir-sni-handshake-failure"]))})
def ir_sni() -> Capture:
    cap = Capture(seed=seed_of("ir3"), hints={"probe_cc": "IR"})
    control_tls(cap, 0.0)
    silent_tls(cap, "web.telegram.org", 1.0)
    return cap


IRAN_BLOCKPAGE = (
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    b'<title>M1-2</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy='
    b'MainPolicy " style="width: 100%; height: 100%" scrolling="no" marginwidth="0" '
    b'marginheight="0" frameborder="0" vspace="0" hspace="0"></iframe></body></html>')


@case("ir/http-iframe-blockpage", "Iran HTTP blockpage: an iframe to http://10.10.34.34",
      shows="The HTTP request with Host www.instagram.com draws an injected 403 whose body is an "
            "iframe to http://10.10.34.34 (IP TTL 45 vs the server's 52), then FIN; the control "
            "Host gets the server's page.",
      source="ooni/blocking-fingerprints fingerprints_http.csv @171641e: ooni.ir_0 (body "
             "contains 'iframe src=\"http://10.10'); OONI 2018 Iran protests report",
      expect={"instagram": blocked(("www.instagram.com", "http.blockpage", ["ir-http-iframe-blockpage"]))})
def ir_http() -> Capture:
    cap = Capture(seed=seed_of("ir4"), hints={"probe_cc": "IR"})
    control_http(cap, 0.0)
    flow = target_http(cap, "www.instagram.com", 1.0)
    flow.inject("FPA", at_ms=4, ttl=45, df=False,
                payload=http_response(403, "Forbidden", [("Connection", "close")], IRAN_BLOCKPAGE))
    return cap


# =========================================================================== India

AIRTEL_BLOCKPAGE = (
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"/></head>'
    b'<body><iframe src="http://www.airtel.in/dot/?dpid=1&dpruleid=3&cat=107&ttl=0&'
    b'groupname=Airtel_Default_User&policyname=dot_Blocked&clientip=198.51.100.10&'
    b'url=telegram.org%2f" width="100%" height="100%" frameborder="0"></iframe></body></html>')


@case("in/airtel-http-iframe", "India, Airtel HTTP blockpage: an iframe to www.airtel.in/dot/",
      shows="The HTTP request with Host telegram.org draws an injected 200 (IP TTL 58, IP ID "
            "242, no DF, against the server's 52 and DF) whose body frames "
            "http://www.airtel.in/dot/?dpid=..., then FIN; the control Host on the same "
            "address gets the server's page.",
      source="ooni/blocking-fingerprints fingerprints_http.csv @171641e: ooni.in_4 (body "
             "contains 'http://www.airtel.in/dot/?dpid='); Singh et al., 'How India Censors "
             "the Web', WebSci 2020; Tripwire's airtel_validate.py (body holds airtel.in)",
      expect={"telegram": blocked(("telegram.org", "http.blockpage", ["in-airtel-http-iframe"]))})
def in_airtel_http() -> Capture:
    cap = Capture(seed=seed_of("in1"), hints={"probe_cc": "IN"})
    control_http(cap, 0.0)
    flow = target_http(cap, "telegram.org", 1.0)
    flow.inject("FPA", at_ms=3, ttl=58, ip_id=242, df=False,
                payload=http_response(200, "OK", [("Connection", "close")], AIRTEL_BLOCKPAGE))
    return cap


# =========================================================================== Filtering products

FORTIGUARD_BLOCKPAGE = (
    b"<html><head><title>Web Filter Violation</title></head><body><h1>FortiGuard Web "
    b"Filtering</h1><p>Web Page Blocked!</p><p>You have tried to access a web page which is "
    b"in violation of your internet usage policy.</p><p>URL: twitter.com/</p><p>Category: "
    b"Social Networking</p><p>Powered By FortiGuard</p></body></html>")


@case("prod/fortiguard-webfilter", "FortiGate web filter: its page in place of the site, "
      "from the path itself",
      shows="The HTTP request with Host twitter.com is answered by a 200 FortiGuard 'Web Page "
            "Blocked!' page carrying the server's own TTL, DF and IP IDs (the firewall is in "
            "the path and answers for the server), while the control Host on the same "
            "address gets the site: nothing is injected, the page alone tells (without the "
            "signature this is only a candidate).",
      source="ooni/blocking-fingerprints fingerprints_http.csv @171641e: "
             "cl.prod_fortiguard_webfilter_blocktext, cl.prod_fortiguard_webfilter_poweredby",
      expect={"twitter": blocked(("twitter.com", "http.blockpage", ["prod-fortiguard-webfilter"]))})
def prod_fortiguard() -> Capture:
    cap = Capture(seed=seed_of("pfg1"))
    control_http(cap, 0.0)
    flow = target_http(cap, "twitter.com", 1.0)
    flow.http_reply(http_response(200, "OK", [("Content-Type", "text/html")],
                                  FORTIGUARD_BLOCKPAGE))
    return cap


@case("prod/netsweeper-deny", "Netsweeper: an injected redirect to its /webadmin/deny/ page",
      shows="The HTTP request with Host www.facebook.com draws an injected 302 (IP TTL 250, IP "
            "ID 0, no DF) to http://192.0.2.80:8080/webadmin/deny/index.php?dpid=4&dpruleid=2"
            "&cat=10&url=..., then FIN; the control Host on the same address gets the "
            "server's page.",
      source="ooni/blocking-fingerprints fingerprints_http.csv @171641e: "
             "cl.prod_netsweeper_inject ('?dpid=' in Location), cl.prod_netsweeper_inject_2 "
             "('/webadmin/deny/'); deployments ooni.ye_0, ooni.sd_3",
      expect={"facebook": blocked(("www.facebook.com", "http.blockpage", ["prod-netsweeper-deny"]))})
def prod_netsweeper() -> Capture:
    cap = Capture(seed=seed_of("pns1"))
    control_http(cap, 0.0)
    flow = target_http(cap, "www.facebook.com", 1.0)
    location = ("http://192.0.2.80:8080/webadmin/deny/index.php?dpid=4&dpruleid=2&cat=10&"
                "url=http%3a%2f%2fwww.facebook.com%2f")
    flow.inject("FPA", at_ms=2, ttl=250, ip_id=0, df=False,
                payload=http_response(302, "Moved Temporarily",
                                      [("Location", location), ("Connection", "close")], b""))
    return cap


# =========================================================================== Russia

def ru_dns_case(path: str, seed: str, answer: str, qname: str, platform: str,
                signature: str, title: str, source: str) -> None:
    def build() -> Capture:
        cap = Capture(seed=seed_of(seed), hints={"probe_cc": "RU"})
        control_dns(cap, 0.0)
        cap.dns(RESOLVER, qname, at=0.5).respond([answer], delay_ms=22, ttl=RESOLVER_TTL,
                                                   answer_ttl=300)
        return cap
    CASES.append(Case(path, title,
                      f"The ISP resolver answers {qname} with A {answer}, its blockpage server; "
                      "the packet is the resolver's own (same IP TTL as for example.com), so only "
                      "the published address tells it is a block.",
                      source, build, {platform: blocked((qname, "dns.redirect", [signature]))}))


ru_dns_case("ru/dns-rostelecom-blockpage", "ru1", "95.167.13.50", "www.linkedin.com", "linkedin",
            "ru-rostelecom-dns-blockpage", "Rostelecom DNS answer pointing at its blockpage",
            "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.ru_dns_1 "
            "95.167.13.50, ooni.ru_dns_2 95.167.13.51 (Rostelecom blockpage)")
ru_dns_case("ru/dns-ertelecom-blockpage", "ru2", "188.186.146.208", "www.linkedin.com", "linkedin",
            "ru-ertelecom-dns-blockpage", "ER-Telecom DNS answer pointing at its blockpage",
            "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.ru_96 5.3.3.17, "
            "ooni.ru_dns_ert_1..4 188.186.146.207/.208, 188.186.154.79/.88")
ru_dns_case("ru/dns-filter-product", "ru3", "193.58.251.11", "www.linkedin.com", "linkedin",
            "ru-dns-filter-products", "Russian DNS filtering product answer (SkyDNS)",
            "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.ru_83 159.255.26.69, "
            "ooni.ru_84 193.58.251.1, ooni.ru_85 193.58.251.11, ooni.ru_86 95.217.66.240, "
            "ooni.ru_87 93.158.134.250")
ru_dns_case("ru/dns-isp-blockpage", "ru4", "62.33.207.196", "www.linkedin.com", "linkedin",
            "ru-isp-dns-blockpage", "Russian ISP DNS answer pointing at an RKN blockpage",
            "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.ru_88..98, "
            "ooni.ru_dns_3..5, ooni.ru_dns_sevensky_1, ooni.ru_dns_trk_1, ooni.ru_dns_macomnet_1")


@case("ru/dpi-rst-ipid", "Russian ISP passive DPI: RST with IP ID 1, faster than the server",
      shows="From a Russian vantage point, the ClientHello with SNI www.linkedin.com draws an "
            "RST+ACK 3 ms later with IP ID 0x0001 and no DF (the server's packets carry DF and "
            "TTL 52); the control SNI works.",
      source="ValdikSS/GoodbyeDPI README (passive DPI: TCP RST for HTTPS, sent faster than the "
             "site, IP ID 0x0000 or 0x0001, as seen with Russian providers); bol-van/zapret docs",
      expect={"linkedin": blocked(("www.linkedin.com", "tls.sni_reset", ["ru-dpi-rst-ipid"]))})
def ru_dpi_rst() -> Capture:
    cap = Capture(seed=seed_of("ru5"), hints={"probe_cc": "RU"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "www.linkedin.com", 1.0)
    flow.inject("RA", at_ms=3, ttl=61, ip_id=1, df=False, window=0)
    return cap


@case("ru/dpi-http-warning-redirect", "Rostelecom: HTTP 302 to warning.rt.ru from the DPI",
      shows="The HTTP request with Host www.linkedin.com draws an injected 302 (IP ID 0, TTL 61, "
            "4 ms) to http://warning.rt.ru/..., then FIN; the control Host gets the server's page.",
      source="ooni/blocking-fingerprints fingerprints_http.csv @171641e: ooni.ru_6 (Location "
             "prefix http://warning.rt.ru); GoodbyeDPI README (302 from passive DPI, IP ID 0/1)",
      expect={"linkedin": blocked(("www.linkedin.com", "http.blockpage",
                                   ["ru-dpi-rst-ipid", "ru-rostelecom-http-warning"]))})
def ru_http_warning() -> Capture:
    cap = Capture(seed=seed_of("ru6"), hints={"probe_cc": "RU"})
    control_http(cap, 0.0)
    flow = target_http(cap, "www.linkedin.com", 1.0)
    flow.inject("FPA", at_ms=4, ttl=61, ip_id=0, df=False,
                payload=http_response(302, "Found", [
                    ("Location", "http://warning.rt.ru/?id=17&st=0&dt=195.82.146.214"
                                 "&rs=http%3A%2F%2Fwww.linkedin.com%2F"),
                    ("Connection", "close")]))
    return cap


@case("ru/tspu-sni-drop", "Russia TSPU: ClientHello with a blocked SNI dropped",
      shows="From a Russian vantage point, the ClientHello with SNI www.facebook.com and its "
            "retransmissions go unanswered for 10 s; the control SNI on the same address works.",
      source="Xue et al., 'TSPU: Russia's Decentralized Censorship System', IMC 2022 (in-path, "
             "stateful, SNI-triggered blocking); net4people/bbs#108",
      expect={"facebook": blocked(("www.facebook.com", "tls.sni_drop", ["ru-tspu-sni-drop"]))})
def ru_tspu() -> Capture:
    cap = Capture(seed=seed_of("ru7"), hints={"probe_cc": "RU"})
    control_tls(cap, 0.0)
    silent_tls(cap, "www.facebook.com", 1.0)
    return cap


def throttled_tls(cap: Capture, sni: str, at: float, *, segments: int, gap_ms: float) -> None:
    flow = target_tls(cap, sni, at)
    end = flow.server_hello()
    flow.server_send(app_data(segments * 1400 - 5), at_ms=end + 5, gap_ms=gap_ms)
    flow.client_close(at_ms=end + 10 + segments * gap_ms)


@case("ru/twitter-throttle-2021", "Russia 2021: Twitter SNIs throttled to about 130-150 kbps",
      shows="From a Russian vantage point, 16.8 kB after the handshake with SNI abs.twimg.com take "
            "1.05 s (about 130 kbps); the same bytes for the control SNI on the same address take "
            "60 ms (about 2.2 Mbps).",
      source="Xue et al., 'Throttling Twitter: An Emerging Censorship Technique in Russia', IMC "
             "2021; censoredplanet.org/throttling (SNI *t.co*, *.twimg.com, *twitter.com; "
             "130-150 kbps)",
      expect={"twitter": blocked(("abs.twimg.com", "tls.sni_throttle", ["ru-twitter-throttle-2021"]))})
def ru_throttle() -> Capture:
    cap = Capture(seed=seed_of("ru8"), hints={"probe_cc": "RU"})
    flow = target_tls(cap, "example.com", 0.0)
    end = flow.server_hello()
    flow.server_send(app_data(12 * 1400 - 5), at_ms=end + 5, gap_ms=5.5)
    flow.client_close(at_ms=end + 80)
    throttled_tls(cap, "abs.twimg.com", 2.0, segments=12, gap_ms=95)
    return cap


# =========================================================================== Turkmenistan

@case("tm/dns-injection-127", "Turkmenistan DNS injection: A 127.0.0.1, IP ID 30000",
      shows="Queried from outside at an address that runs no resolver, twitter.com is answered "
            "with A 127.0.0.1 (DNS TTL 300, flags qr rd ra, NOERROR), IP ID 30000, received TTL "
            "102 (initial 128), no DF; example.com to the same address gets nothing.",
      source="Nourin et al., WWW 2023; breakerspace/turkmenistan-censorship README (dig "
             "@95.85.117.12 twitter.com -> 127.0.0.1, IPID 30000, TTL 102 / initial 128, no DF)",
      expect={"twitter": blocked(("twitter.com", "dns.injection",
                                  ["generic-dns-loopback", "tm-dns-injection"]))})
def tm_dns() -> Capture:
    cap = Capture(seed=seed_of("tm1"), hints={"no_resolver": [NO_RESOLVER]})
    cap.dns(NO_RESOLVER, "example.com", at=0.0)
    cap.dns(NO_RESOLVER, "twitter.com", at=2.5).respond(
        ["127.0.0.1"], delay_ms=130, ttl=102, ip_id=30000, df=False, flags=0x8180, answer_ttl=300)
    return cap


@case("tm/rst", "Turkmenistan RST: seq 0, window 0, IP ID 30000, initial TTL 128",
      shows="The ClientHello with SNI twitter.com draws an RST (no ACK) with sequence number 0, "
            "window 0, IP ID 30000, received TTL 102, no DF; the control SNI on the same address "
            "works.",
      source="Nourin et al., WWW 2023; breakerspace/turkmenistan-censorship README (RST only, "
             "seq 0, win 0, IPID 30000, initial TTL 128)",
      expect={"twitter": blocked(("twitter.com", "tls.sni_reset", ["tm-rst"]))})
def tm_rst() -> Capture:
    cap = Capture(seed=seed_of("tm2"), hints={"probe_cc": "TM"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "twitter.com", 1.0)
    flow.inject("R", at_ms=61, ttl=102, ip_id=30000, df=False, window=0, seq=0)
    return cap


@case("tm/rst-http", "Turkmenistan RST on a plain-HTTP request",
      shows="The HTTP request with Host twitter.com draws the same RST (seq 0, window 0, IP ID "
            "30000, TTL 102, no DF); the control Host works.",
      source="breakerspace/turkmenistan-censorship README (the trigger may be an HTTP Host)",
      expect={"twitter": blocked(("twitter.com", "http.reset", ["tm-rst"]))})
def tm_rst_http() -> Capture:
    cap = Capture(seed=seed_of("tm3"), hints={"probe_cc": "TM"})
    control_http(cap, 0.0)
    flow = target_http(cap, "twitter.com", 1.0)
    flow.inject("R", at_ms=58, ttl=102, ip_id=30000, df=False, window=0, seq=0)
    return cap


# =========================================================================== Kazakhstan

NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2049, 12, 31, tzinfo=dt.UTC)


def _key(seed: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _name(cn: str, org: str, country: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if country:
        attrs.insert(0, x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    return x509.Name(attrs)


def _cert(subject: x509.Name, issuer: x509.Name, key: ed25519.Ed25519PrivateKey,
          signer: ed25519.Ed25519PrivateKey, serial: int, *, ca: bool,
          names: tuple[str, ...] = ()) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(signer, None)  # Ed25519 signatures are deterministic


def kz_pki() -> dict[str, Any]:
    public_root_key, qaznet_key, leaf_key = _key(1), _key(2), _key(3)
    public_root = _name("Fixture Public Root CA", "fingerprint fixtures")
    qaznet = _name("Qaznet Trust Network", "Qaznet Trust Network", "KZ")
    root_cert = _cert(public_root, public_root, public_root_key, public_root_key, 1, ca=True)
    qaznet_cert = _cert(qaznet, qaznet, qaznet_key, qaznet_key, 2, ca=True)
    genuine = _cert(_name("example.com", "Example"), public_root, leaf_key, public_root_key, 3,
                    ca=False, names=("example.com",))
    forged = _cert(_name("www.facebook.com", "Facebook"), qaznet, leaf_key, qaznet_key, 4,
                   ca=False, names=("www.facebook.com", "*.facebook.com"))
    der = serialization.Encoding.DER
    return {"ca_pem": root_cert.public_bytes(serialization.Encoding.PEM),
            "genuine": (genuine.public_bytes(der), root_cert.public_bytes(der)),
            "forged": (forged.public_bytes(der), qaznet_cert.public_bytes(der))}


@case("kz/mitm-qaznet", "Kazakhstan 2019: TLS interception with the Qaznet Trust Network root",
      shows="The ClientHello with SNI www.facebook.com is answered with a certificate chain ending "
            "in 'Qaznet Trust Network' (not a trusted root); the control SNI on the same address "
            "gets a chain to the trusted root (ca.pem stands for the public trust store).",
      source="Censored Planet, 'Kazakhstan's HTTPS Interception', 2019 (censoredplanet.org/"
             "kazakhstan: SNI-triggered, fake root CA, >= 37 domains, AS9198); the CA's name "
             "'Qaznet Trust Network' as reported by the press (e.g. tweakers.net 155336)",
      expect={"facebook": blocked(("www.facebook.com", "tls.mitm", ["kz-mitm-qaznet"]))},
      extra_files=lambda: {"ca.pem": kz_pki()["ca_pem"]})
def kz_mitm() -> Capture:
    pki = kz_pki()
    cap = Capture(seed=seed_of("kz1"), hints={"probe_cc": "KZ"})
    control_tls(cap, 0.0, chain=pki["genuine"])
    flow = target_tls(cap, "www.facebook.com", 1.0)
    flow.server_hello(pki["forged"], at_ms=45)
    flow.client_close(at_ms=120)
    return cap


@case("kz/sni-timeout", "Kazakhstan 2023-24: session times out after the ClientHello",
      shows="From a Kazakh vantage point, the TCP handshake completes and the ClientHello with "
            "SNI www.facebook.com is never answered; the control SNI on the same address works.",
      source="OONI et al., 'Kazakhstan: TLS MITM attacks and blocking of news media, human "
             "rights, and circumvention tool sites', 2024-09-19 (blocks by timing out the session "
             "after the ClientHello)",
      expect={"facebook": blocked(("www.facebook.com", "tls.sni_drop", ["kz-sni-timeout"]))})
def kz_timeout() -> Capture:
    cap = Capture(seed=seed_of("kz2"), hints={"probe_cc": "KZ"})
    control_tls(cap, 0.0)
    silent_tls(cap, "www.facebook.com", 1.0)
    return cap


# =========================================================================== Uzbekistan

@case("uz/sni-drop-2021", "Uzbekistan July 2021: SNI-only drop, DNS clean, TCP fine",
      shows="From AS8193-like vantage (probe_cc UZ): vk.com resolves to VK's own address, the TCP "
            "handshake completes, the ClientHello with SNI vk.com is never answered (no RST); "
            "the control SNI on the same address works.",
      source="net4people/bbs#78 (2021-07-30, from ntc.party t/1122; Jigsaw measure.sh on AS8193: "
             "twitter.com, vk.com, skype.com, TikTok; SNI-only, ServerHello timeout, no DNS "
             "interference)",
      expect={"vkontakte": blocked(("vk.com", "tls.sni_drop", ["uz-sni-drop-2021"]))})
def uz_sni_drop() -> Capture:
    cap = Capture(seed=seed_of("uz1"), hints={"probe_cc": "UZ"})
    control_dns(cap, 0.0)
    cap.dns(RESOLVER, "vk.com", at=0.3).respond(["87.240.190.72"], delay_ms=25, ttl=RESOLVER_TTL)
    control_tls(cap, 1.0)
    silent_tls(cap, "vk.com", 2.0)
    return cap


@case("uz/middlebox-fin", "Uzbekistan: injected FIN carrying 'Middlebox v 1.0', then RST",
      shows="The ClientHello with SNI twitter.com draws a FIN+PSH+ACK with the right seq/ack "
            "after 2 ms carrying 'Middlebox v 1.0' (IP TTL 61 vs the server's 52, random IP ID), "
            "re-sent twice 1 s apart, then an RST; the control SNI on the same address works.",
      source="ntc.party t/1414, 'Ugly shaping, false FINs, and annoying RSTs' (FINs with correct "
             "seq/ack, too fast for the server, random IP IDs, payload 'Middlebox v 1.0'; re-sent "
             "1 s apart, then RST)",
      expect={"twitter": blocked(("twitter.com", "tls.sni_fin", ["uz-middlebox-fin"]))})
def uz_middlebox() -> Capture:
    cap = Capture(seed=seed_of("uz2"), hints={"probe_cc": "UZ"})
    control_tls(cap, 0.0)
    flow = target_tls(cap, "twitter.com", 1.0)
    for i in range(3):
        flow.inject("FPA", at_ms=2 + i * 1000, ttl=61, df=False, payload=b"Middlebox v 1.0\r\n")
    flow.inject("RA", at_ms=3002, ttl=61, df=False, window=0, seq_offset=18)
    return cap


def uz_object_not_found(kind: str) -> Callable[[], Capture]:
    def build() -> Capture:
        cap = Capture(seed=seed_of("uz3" + kind), hints={"probe_cc": "UZ"})
        if kind == "tls":
            control_tls(cap, 0.0)
            flow = target_tls(cap, "www.skype.com", 1.0)
        else:
            control_http(cap, 0.0)
            flow = target_http(cap, "www.skype.com", 1.0)
        flow.inject("FPA", at_ms=3, ttl=60, df=False, payload=b"Object not found\r\n")
        return cap
    return build


for _kind, _technique in (("tls", "tls.sni_fin"), ("http", "http.fin")):
    CASES.append(Case(
        f"uz/object-not-found-{_kind}",
        f"Uzbekistan legacy block: injected 'Object not found' ({_kind.upper()})",
        "The " + ("ClientHello with SNI" if _kind == "tls" else "HTTP request with Host")
        + " www.skype.com draws an injected segment 'Object not found\\r\\n' with FIN after "
          "3 ms (IP TTL 60 vs the server's 52); the control works.",
        "net4people/bbs#78 (older blocked domains: an injected 'Object not found\\r\\n' for both "
        "HTTP and TLS, bidirectional)",
        uz_object_not_found(_kind),
        {"skype": blocked(("www.skype.com", _technique, ["uz-object-not-found"]))}))


@case("uz/reestr-redirect", "Uzbekistan: HTTP 302 to http://reestr.mitc.uz/",
      shows="The HTTP request with Host twitter.com gets a 302 to http://reestr.mitc.uz/ (the "
            "national register of blocked sites); the control Host gets the server's page.",
      source="ooni/blocking-fingerprints fingerprints_http.csv @171641e: ooni.uz_0 (Location "
             "prefix http://reestr.mitc.uz/, scope nat, UZ; ooni/pipeline PR #374)",
      expect={"twitter": blocked(("twitter.com", "http.blockpage", ["uz-reestr-redirect"]))})
def uz_reestr() -> Capture:
    cap = Capture(seed=seed_of("uz4"), hints={"probe_cc": "UZ"})
    control_http(cap, 0.0)
    flow = target_http(cap, "twitter.com", 1.0)
    flow.http_reply(http_response(302, "Found", [("Location", "http://reestr.mitc.uz/"),
                                                 ("Connection", "close")]))
    return cap


# =========================================================================== generic and others

def dns_answer_case(path: str, seed: str, qname: str, platform: str, answer: str,
                    expect_sigs: list[str], technique: str, title: str, source: str,
                    probe_cc: str | None = None) -> None:
    def build() -> Capture:
        cap = Capture(seed=seed_of(seed), hints={"probe_cc": probe_cc} if probe_cc else None)
        control_dns(cap, 0.0)
        cap.dns(RESOLVER, qname, at=0.5).respond([answer], delay_ms=18, ttl=RESOLVER_TTL,
                                                   answer_ttl=60)
        return cap
    CASES.append(Case(path, title,
                      f"The resolver answers {qname} with A {answer}; example.com resolves "
                      "normally on the same resolver.",
                      source, build, {platform: blocked((qname, technique, expect_sigs))}))


dns_answer_case("generic/dns-loopback", "g1", "signal.org", "signal", "127.0.0.1",
                ["generic-dns-loopback"], "dns.redirect", "DNS answer 127.0.0.1",
                "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: cl.dns_br_localhost "
                "(127.0.0.1, vbw: a common way to block with DNS)")
dns_answer_case("generic/dns-unspecified", "g2", "signal.org", "signal", "0.0.0.0",  # noqa: S104 (an answer, not a bind)
                ["generic-dns-unspecified"], "dns.redirect", "DNS answer 0.0.0.0",
                "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: cl.dns_br_allzero "
                "(0.0.0.0, vbw)")
dns_answer_case("generic/dns-private", "g3", "signal.org", "signal", "192.168.1.1",
                ["generic-dns-private"], "dns.redirect", "DNS answer in private address space",
                "RFC 1918 / RFC 6598 / RFC 4193 private ranges; OONI 'dns_bogon_error' "
                "(ooni/probe-cli internal/netxlite)")
dns_answer_case("generic/dns-1-2-3-4", "g4", "signal.org", "signal", "1.2.3.4",
                ["generic-dns-1-2-3-4"], "dns.redirect", "DNS answer 1.2.3.4",
                "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: cl.dns_br_1234 "
                "(1.2.3.4, vbw)")
dns_answer_case("tr/dns-poison", "tr1", "twitter.com", "twitter", "195.175.254.2",
                ["tr-dns-poison"], "dns.redirect", "Turkey: DNS answer 195.175.254.2",
                "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.tr_6 "
                "(195.175.254.2, nat, 'a poisoned DNS reply used in Turkey since 2014')", "TR")
dns_answer_case("by/dns-mts", "by1", "twitter.com", "twitter", "134.17.0.7",
                ["by-mts-dns"], "dns.redirect", "Belarus MTS: DNS answer 134.17.0.7",
                "ooni/blocking-fingerprints fingerprints_dns.csv @171641e: ooni.by_4 "
                "(134.17.0.7, isp, mobile ISP MTS)", "BY")


# =========================================================================== false positives

@case("false-positive/closed-port-rst", "A server's own RST: nothing listens on the port",
      shows="SYN to 203.0.113.20:443 (the address the probe tested for Signal) is answered by "
            "RST+ACK with seq 0, window 0, DF set and IP ID 0 - what Linux sends for a closed "
            "port - while the control address answers on 443. Without the false-positive "
            "signature this reads as ip.reset; with it, no ip.reset, but no TLS test could run "
            "either: inconclusive, not accessible.",
      source="Linux net/ipv4/tcp_ipv4.c tcp_v4_send_reset and ip_send_unicast_reply (RST from "
             "the per-netns control socket: DF set, IP ID 0); Weaver et al., 'Detecting Forged "
             "TCP Reset Packets', NDSS 2009 (ordinary stacks also reset)",
      expect={"signal": ("inconclusive", [])})
def fp_closed_port() -> Capture:
    cap = Capture(seed=seed_of("fp1"), hints={"address_platform": {SERVER2: "signal"}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.5, server=CONTROL_SERVER)
    flow = cap.tcp(SERVER2, 443, at=1.0, server_ttl=SERVER_TTL)
    flow.syn_refused(ttl=SERVER_TTL, ip_id=0, df=True)
    again = cap.tcp(SERVER2, 443, at=2.0, server_ttl=SERVER_TTL)
    again.syn_refused(ttl=SERVER_TTL, ip_id=0, df=True)
    return cap


@case("false-positive/injected-syn-rst", "RST to the SYN that the closed-port rule must not hide",
      shows="SYN to 203.0.113.20:443 is answered by RST+ACK without DF and with IP ID 12321 "
            "(not what a Linux server sends); the control address answers. This stays ip.reset.",
      source="Negative case for false-positive/closed-port-rst (Linux RSTs carry DF and IP ID 0)",
      expect={"signal": blocked(("203.0.113.20", "ip.reset", []))})
def fp_injected_syn_rst() -> Capture:
    cap = Capture(seed=seed_of("fp2"), hints={"address_platform": {SERVER2: "signal"}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.5, server=CONTROL_SERVER)
    flow = cap.tcp(SERVER2, 443, at=1.0)
    flow.syn_refused(ttl=58, ip_id=12321, df=False, delay_ms=5)
    return cap


def redirect_case(path: str, seed: str, host: str, platform: str, location: str, title: str,
                  shows: str, source: str) -> None:
    def build() -> Capture:
        cap = Capture(seed=seed_of(seed))
        control_http(cap, 0.0)
        flow = target_http(cap, host, 1.0)
        flow.http_reply(http_response(301, "Moved Permanently", [("Location", location)]))
        return cap
    CASES.append(Case(path, title, shows, source, build, {platform: ACCESSIBLE}))


redirect_case("false-positive/twitter-to-x", "fp1r", "twitter.com", "twitter", "https://x.com/",
              "twitter.com redirects to x.com (the platform's own move, not a blockpage)",
              "The server for twitter.com answers 301 to https://x.com/: a redirect to another "
              "site, which the control logic alone would report as a blockpage redirect.",
              "Twitter's move to x.com (twitter.com redirects to x.com since 2024-05-17, "
              "announced by X); catalog: twitter.com and x.com are the same platform")
redirect_case("false-positive/google-cctld", "fp2r", "google.com", "google",
              "http://www.google.co.uz/?gws_rd=cr",
              "google.com redirects to a country domain (www.google.co.uz)",
              "The server for google.com answers 301 to http://www.google.co.uz/: Google's "
              "redirect to the visitor's country domain, not a blockpage.",
              "Google's country redirect (google.com -> www.google.<cc>, parameter gws_rd=cr), "
              "documented in Google Search Help 'Change your Google domain'")


# =========================================================================== firewalls, interception, residual blocking

def traced_syn(cap: Capture, server: str, port: int, at: float, syn_ttl: int, *,
               router: str | None = None, router_ttl: int = 64, rst_ttl: int | None = None,
               delay_ms: float = 4.0) -> None:
    """One SYN sent with IP TTL `syn_ttl` (a TTL-limited repeat of the connection attempt):
    it expires at `router` (ICMP time exceeded arriving with `router_ttl`) or draws a
    RST+ACK shaped like Linux's (seq 0, window 0, DF, IP ID 0) arriving with `rst_ttl`."""
    sport = cap.rng.randrange(32768, 61000)
    isn = cap.rng.getrandbits(32)
    raw = cap.emit(at, cap.ip(cap.client, server, ttl=syn_ttl)
                   / TCP(sport=sport, dport=port, flags="S", seq=isn, window=64240))
    if router is not None:
        cap.time_exceeded(at + delay_ms / 1000.0, router, raw, ttl=router_ttl)
    elif rst_ttl is not None:
        cap.emit(at + delay_ms / 1000.0,
                 cap.ip(server, cap.client, ttl=rst_ttl, ip_id=0, df=True)
                 / TCP(sport=port, dport=sport, flags="RA", seq=0,
                       ack=(isn + 1) & 0xFFFFFFFF, window=0))


@case("generic/firewall-syn-reset", "A firewall on the path resets SYNs to the platform's address",
      shows="SYNs to 203.0.113.20:443 (Signal's address) draw a RST+ACK shaped like a Linux "
            "kernel's (seq 0, window 0, DF, IP ID 0: iptables REJECT --reject-with tcp-reset "
            "builds it so) arriving with IP TTL 63, while the control address answers on 443. "
            "TTL-limited SYNs: TTL 1 expires at 192.0.2.1, TTL 2 at 192.0.2.2 (its time exceeded "
            "arrives with IP TTL 63), TTL 3 to 5 draw the same RST with IP TTL 63: the RST leaves "
            "the box at hop 2, the same distance as that router, not the server beyond it (a "
            "closed port's RST comes from one hop further, and arrives with a lower TTL). "
            "ip.reset, located; the closed-port false-positive signature must not hide it.",
      source="Linux net/ipv4/netfilter/nf_reject_ipv4.c (nf_reject_iphdr_put: IP ID 0, DF, TTL "
             "from the route; nf_reject_ip_tcphdr_put: RST+ACK, window 0); issue 13 case 1 of "
             "this project (iptables REJECT --reject-with tcp-reset between client and server)",
      expect={"signal": blocked(("203.0.113.20", "ip.reset", []))})
def firewall_syn_reset() -> Capture:
    cap = Capture(seed=seed_of("fw1"), hints={"address_platform": {SERVER2: "signal"}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.5, server=CONTROL_SERVER)
    for i in range(2):
        flow = cap.tcp(SERVER2, 443, at=1.0 + i, server_ttl=SERVER_TTL)
        flow.syn_refused(ttl=63, ip_id=0, df=True, delay_ms=4)
    for ttl in (1, 2, 3, 4, 5):
        at = 4.0 + ttl * 0.5
        if ttl < 3:
            traced_syn(cap, SERVER2, 443, at, ttl, router=f"192.0.2.{ttl}", router_ttl=65 - ttl)
        else:
            traced_syn(cap, SERVER2, 443, at, ttl, rst_ttl=63)
    return cap


@case("false-positive/closed-port-rst-traced", "A closed port, with TTL-limited SYNs",
      shows="SYNs to 203.0.113.20:443 draw a Linux kernel RST+ACK arriving with IP TTL 61; the "
            "control address answers on 443. TTL-limited SYNs expire at three routers (time "
            "exceeded arriving with IP TTL 64, 63, 62) and from TTL 4 draw the RST with TTL 61: "
            "one hop beyond the last router, where the server is. The server's own closed port, "
            "not a firewall: the closed-port false-positive signature still applies (no ip.reset; "
            "no TLS test could run: inconclusive).",
      source="Negative case for generic/firewall-syn-reset; Linux net/ipv4/tcp_ipv4.c "
             "tcp_v4_send_reset (closed port: RST+ACK, seq 0, window 0, DF, IP ID 0)",
      expect={"signal": ("inconclusive", [])})
def closed_port_traced() -> Capture:
    cap = Capture(seed=seed_of("fw2"), hints={"address_platform": {SERVER2: "signal"}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.5, server=CONTROL_SERVER)
    for i in range(2):
        flow = cap.tcp(SERVER2, 443, at=1.0 + i, server_ttl=SERVER_TTL)
        flow.syn_refused(ttl=61, ip_id=0, df=True, delay_ms=6)
    for ttl in (1, 2, 3, 4, 5):
        at = 4.0 + ttl * 0.5
        if ttl < 4:
            traced_syn(cap, SERVER2, 443, at, ttl, router=f"192.0.2.{ttl}", router_ttl=65 - ttl)
        else:
            traced_syn(cap, SERVER2, 443, at, ttl, rst_ttl=61, delay_ms=6)
    return cap


def interception_pki() -> dict[str, Any]:
    public_root_key, box_key, leaf_key = _key(11), _key(12), _key(13)
    public_root = _name("Fixture Public Root CA", "fingerprint fixtures")
    box = _name("Fixture Interception Box CA", "fingerprint fixtures")
    root_cert = _cert(public_root, public_root, public_root_key, public_root_key, 11, ca=True)
    box_cert = _cert(box, box, box_key, box_key, 12, ca=True)
    genuine = _cert(_name("example.com", "Example"), public_root, leaf_key, public_root_key, 13,
                    ca=False, names=("example.com",))
    forged_target = _cert(_name("twitter.com", "Twitter"), box, leaf_key, box_key, 14,
                          ca=False, names=("twitter.com", "*.twitter.com"))
    forged_control = _cert(_name("example.com", "Example"), box, leaf_key, box_key, 15,
                           ca=False, names=("example.com",))
    der = serialization.Encoding.DER
    return {"ca_pem": root_cert.public_bytes(serialization.Encoding.PEM),
            "genuine": (genuine.public_bytes(der), root_cert.public_bytes(der)),
            "forged_target": (forged_target.public_bytes(der), box_cert.public_bytes(der)),
            "forged_control": (forged_control.public_bytes(der), box_cert.public_bytes(der))}


@case("generic/address-mitm", "Address-wide TLS interception: every SNI on the platform's address",
      shows="Every TLS connection to 203.0.113.10 (twitter.com's address) is answered with a "
            "chain ending in 'Fixture Interception Box CA', which the client does not trust: "
            "for SNI twitter.com and for the control SNI example.com alike. The control name "
            "example.com sent to its own address 203.0.113.99 gets a chain to the trusted root "
            "(ca.pem stands for the public trust store), so the trust anchors are fine: "
            "tls.mitm, address-wide, not 'trust anchors missing'.",
      source="Issue 13 case 2 of this project (interception box answering every TLS connection "
             "to one address); Censored Planet, 'Kazakhstan's HTTPS Interception', 2019 (an "
             "interception root the clients do not trust)",
      expect={"twitter": blocked(("twitter.com", "tls.mitm", []))},
      extra_files=lambda: {"ca.pem": interception_pki()["ca_pem"]})
def address_mitm() -> Capture:
    pki = interception_pki()
    cap = Capture(seed=seed_of("mitm-addr"), hints={"address_platform": {SERVER: "twitter"}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.2, server=CONTROL_SERVER, chain=pki["genuine"])
    control_tls(cap, 0.6, chain=pki["forged_control"])
    flow = target_tls(cap, "twitter.com", 1.0)
    flow.server_hello(pki["forged_target"], at_ms=45)
    flow.client_close(at_ms=120)
    return cap


@case("generic/all-tls-untrusted", "Every certificate untrusted, control address included",
      shows="As generic/address-mitm, but the control name on its own address is answered with "
            "an untrusted chain too (the trust store lacks the root, or every TLS connection is "
            "intercepted): nothing proves the trust anchors, so no verdict.",
      source="Negative case for generic/address-mitm (commit 3a765d8: target and control both "
             "untrusted with no other proof is inconclusive)",
      expect={"twitter": ("inconclusive", [])})
def all_tls_untrusted() -> Capture:
    pki = interception_pki()
    cap = Capture(seed=seed_of("mitm-all"), hints={"address_platform": {SERVER: "twitter"}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.2, server=CONTROL_SERVER, chain=pki["forged_control"])
    control_tls(cap, 0.6, chain=pki["forged_control"])
    flow = target_tls(cap, "twitter.com", 1.0)
    flow.server_hello(pki["forged_target"], at_ms=45)
    flow.client_close(at_ms=120)
    return cap


def residual_tls(cap: Capture, sni: str, at: float, server: str = SERVER) -> None:
    """A connection during a GFW-style residual block of the 3-tuple: the SYN draws a
    forged SYN-ACK, the ClientHello draws forged RST+ACKs, whatever its SNI."""
    flow = cap.tcp(server, 443, at=at, server_ttl=SERVER_TTL)
    flow.forged_handshake(ttl=104, delay_ms=9, df=False)
    flow.client_hello(sni)
    for i, offset in enumerate((0, 1460, 4380)):
        flow.inject("RA", at_ms=11 + i * 0.05, ttl=105 + i, df=False, window=2631 + i * 7,
                    seq_offset=offset)


@case("generic/residual-3tuple", "Injected RSTs after a slow injector lost the race, then a "
      "residual block of the 3-tuple that also hits the later controls",
      shows="The control SNI example.com on 203.0.113.10:443 works. The ClientHello with SNI "
            "twitter.com gets the server's ServerHello first, then three forged RST+ACKs (TTL "
            "104-106, no DF) 60 ms after it. From then on every connection to 203.0.113.10:443 "
            "draws a forged SYN-ACK and forged RSTs on its ClientHello, control SNI or not "
            "(three controls at 3-4 s, the target again at 4.5 s), until a control at 95 s works "
            "again. The HTTP control on port 80 keeps working. Wanted: tls.sni_reset on "
            "twitter.com (the RSTs injected after the trigger), with the residual block stated "
            "(same address and port, at least 3 s, over before 94 s); the controls that "
            "failed only after the trigger do not cancel it.",
      source="Wang et al., 'Your State is Not Mine', IMC 2017, sec. 2.1 (residual block of "
             "about 90 s on the 3-tuple: forged SYN/ACK, then RSTs); Bock et al., 'Detecting "
             "and Evading Censorship-in-Depth', IMC 2021 (residual censorship); issue 13 case 3",
      expect={"twitter": blocked(("twitter.com", "tls.sni_reset", ["cn-gfw-residual"]))})
def residual_3tuple() -> Capture:
    cap = Capture(seed=seed_of("residual-3tuple"))
    control_dns(cap, 0.0)
    control_http(cap, 0.3)
    control_tls(cap, 0.5)
    first = target_tls(cap, "twitter.com", 1.0)
    first.server_hello(at_ms=42)
    for i, offset in enumerate((0, 1460, 4380)):
        first.inject("RA", at_ms=60 + i * 0.05, ttl=104 + i, df=False, window=2617 + i * 7,
                     seq_offset=offset)
    for i in range(3):
        residual_tls(cap, "example.com", 3.0 + i * 0.5)
    residual_tls(cap, "twitter.com", 4.5)
    control_http(cap, 5.0)
    control_tls(cap, 95.0)
    return cap


@case("generic/no-residual-while-the-address-works", "An injected RST, then the address keeps "
      "working: a later failure on its own is no residual block",
      shows="The control SNI example.com on 203.0.113.10:443 works. The ClientHello with SNI "
            "twitter.com draws a forged RST+ACK (TTL 61 against the server's 52, no DF). Then "
            "the control works again on the same address and port, a bare SYN to it goes "
            "unanswered (loss, or a connection the client gave up), and the ClientHello with "
            "SNI www.facebook.com draws a forged RST+ACK of its own. Wanted: both targets "
            "tls.sni_reset: a connection that worked after the first trigger shows the "
            "3-tuple was not blocked, so the later failures are not residual blocking (as "
            "seen on the UPB Iran captures, where an ECH control without SNI that always "
            "fails followed a blocked SNI).",
      source="Issue 13 case 3 of this project; Wang et al., 'Your State is Not Mine', IMC 2017, "
             "sec. 2.1 (a residual block lets no connection of the 3-tuple through)",
      expect={"twitter": blocked(("twitter.com", "tls.sni_reset", [])),
              "facebook": blocked(("www.facebook.com", "tls.sni_reset", []))})
def no_residual_while_the_address_works() -> Capture:
    cap = Capture(seed=seed_of("no-residual-while-the-address-works"))
    control_dns(cap, 0.0)
    control_tls(cap, 0.5)
    first = target_tls(cap, "twitter.com", 1.0)
    first.inject("RA", at_ms=30, ttl=61, df=False, window=0)
    control_tls(cap, 2.0)
    cap.tcp(SERVER, 443, at=3.0, server_ttl=SERVER_TTL).syn_unanswered()
    second = target_tls(cap, "www.facebook.com", 6.0)
    second.inject("RA", at_ms=30, ttl=61, df=False, window=0)
    control_tls(cap, 7.0)
    return cap


@case("generic/residual-client", "Injected RST, then every connection from the client reset "
      "for a while (whole-address flag)",
      shows="Controls on 203.0.113.10 (twitter.com's address) and on 203.0.113.20 (Facebook's) "
            "work, and www.facebook.com's TLS test works. The ClientHello with SNI twitter.com "
            "draws a forged RST+ACK (TTL 61 against the server's 52, no DF). From then on, for "
            "the next 30 s, every SYN from the client to either address is answered by a RST+ACK "
            "from the censor (TTL 61, no DF): Facebook's later HTTP test, the repeated controls "
            "and twitter.com's second attempt never connect. Wanted: tls.sni_reset on "
            "twitter.com with the residual block stated (the client's whole address: "
            "connections to another address failed too); Facebook not blocked (its failures "
            "started only with the residual block): inconclusive for what it could not test.",
      source="Issue 13 case 3 of this project (simpler censors flag the client's whole "
             "address for a time); Bock et al., 'Detecting and Evading Censorship-in-Depth', "
             "IMC 2021 (residual censorship of the client after a trigger)",
      expect={"twitter": blocked(("twitter.com", "tls.sni_reset", [])),
              "facebook": ("inconclusive", [])})
def residual_client() -> Capture:
    cap = Capture(seed=seed_of("residual-client"))
    control_dns(cap, 0.0)
    for server, at in ((SERVER, 0.2), (SERVER2, 0.4)):
        control_tls(cap, at, server=server)
        control_http(cap, at + 0.05, server=server)
    fb = target_tls(cap, "www.facebook.com", 0.8, server=SERVER2)
    fb.server_hello()
    fb.client_close(at_ms=120)
    first = target_tls(cap, "twitter.com", 1.0)
    first.inject("RA", at_ms=8, ttl=61, ip_id=0, df=False, window=0)
    for i, (server, port) in enumerate(((SERVER2, 80), (SERVER, 443), (SERVER2, 443),
                                        (SERVER, 443), (SERVER2, 80), (SERVER, 80))):
        flow = cap.tcp(server, port, at=2.0 + i * 0.5, server_ttl=SERVER_TTL)
        flow.syn_refused(ttl=61, ip_id=0, df=False, delay_ms=8)
    return cap


def confirmation_note(flow: TcpFlow, name: str, at: float) -> dict[str, Any]:
    """One flow of the confirmation round as the probe notes it (probes/confirm.py)."""
    return {"name": name, "dst": flow.server, "dport": flow.dport, "sport": flow.sport,
            "proto": "tcp", "at": round(START + at, 6)}


def confirmation_test(cap: Capture, platform: str, technique: str, target: str, server: str,
                      at: float) -> tuple[TcpFlow, TcpFlow]:
    """A TLS test of the confirmation round: the control SNI, then the target, each noted
    in the capture hints under 'confirmation' as the probe writes them."""
    control = target_tls(cap, "example.com", at, server)
    again = target_tls(cap, target, at + 1.0, server)
    cap.hints["confirmation"]["tests"].append({
        "platform": platform, "technique": technique, "family": "tls", "target": target,
        "address": server, "port": 443,
        "control": confirmation_note(control, "example.com", at),
        "test": confirmation_note(again, target, at + 1.0)})
    return control, again


@case("generic/confirmation-round", "A confirmation round that reproduces one finding and not "
      "the other",
      shows="Sweep: the ClientHello with SNI twitter.com on 203.0.113.10 goes unanswered twice "
            "(as a slow middlebox's full queue drops it) while the control SNI worked; on "
            "203.0.113.20 the ClientHello with SNI www.facebook.com draws a forged RST+ACK (TTL "
            "61 vs 52) twice, the control worked. Confirmation round (named in the capture "
            "notes under 'confirmation', as the probe writes them), one connection at a time, "
            "control first: twitter.com's control works and twitter.com gets its ServerHello "
            "(not reproduced: inconclusive with both results); www.facebook.com's control works "
            "and the forged RST comes again (confirmed: tls.sni_reset).",
      source="Issue 13 item 5 of this project (bursts through a slow middlebox made false "
             "tls.sni_drop claims; a confirmation round re-tests every finding one connection at "
             "a time with its control just before it)",
      expect={"twitter": ("inconclusive", []),
              "facebook": blocked(("www.facebook.com", "tls.sni_reset", []))})
def confirmation_round() -> Capture:
    cap = Capture(seed=seed_of("confirmation"),
                  hints={"confirmation": {"start": round(START + 20.0, 6), "tests": []}})
    control_dns(cap, 0.0)
    control_tls(cap, 0.2)
    control_tls(cap, 0.3, server=SERVER2)
    for i in range(2):
        silent_tls(cap, "twitter.com", 1.0 + i * 0.1)
        fb = target_tls(cap, "www.facebook.com", 1.05 + i * 0.1, server=SERVER2)
        fb.inject("RA", at_ms=8, ttl=61, df=False, window=0)
    control, again = confirmation_test(cap, "twitter", "tls.sni_drop", "twitter.com", SERVER, 20.0)
    for flow in (control, again):
        flow.server_hello()
        flow.client_close(at_ms=120)
    control, again = confirmation_test(cap, "facebook", "tls.sni_reset", "www.facebook.com",
                                       SERVER2, 22.0)
    control.server_hello()
    control.client_close(at_ms=120)
    again.inject("RA", at_ms=8, ttl=61, df=False, window=0)
    cap.hints["confirmation"]["end"] = round(START + 25.0, 6)
    return cap


@case("generic/residual-two-triggers", "Two triggers on two addresses, each followed by a "
      "residual block of its own 3-tuple",
      shows="Controls on 203.0.113.10 and 203.0.113.20 work. The ClientHello with SNI "
            "twitter.com (203.0.113.10) draws forged RST+ACKs at 1 s, www.facebook.com's "
            "(203.0.113.20) at 1.5 s; after each trigger, later connections to that address "
            "and port draw a forged SYN-ACK and RSTs whatever their SNI (controls at 3-4 s). "
            "Both are tls.sni_reset: Facebook's failures follow its own trigger, not a block "
            "of the whole client that twitter.com's trigger would have started.",
      source="Wang et al., 'Your State is Not Mine', IMC 2017, sec. 2.1 (residual block per "
             "3-tuple, about 90 s); negative case for the client-wide residual rule "
             "(generic/residual-client)",
      expect={"twitter": blocked(("twitter.com", "tls.sni_reset", ["cn-gfw-rst-type2"])),
              "facebook": blocked(("www.facebook.com", "tls.sni_reset", ["cn-gfw-rst-type2"]))})
def residual_two_triggers() -> Capture:
    cap = Capture(seed=seed_of("residual-two"))
    control_dns(cap, 0.0)
    control_tls(cap, 0.2)
    control_tls(cap, 0.3, server=SERVER2)
    for sni, server, at in (("twitter.com", SERVER, 1.0), ("www.facebook.com", SERVER2, 1.5)):
        flow = target_tls(cap, sni, at, server)
        for i, offset in enumerate((0, 1460, 4380)):
            flow.inject("RA", at_ms=12 + i * 0.05, ttl=104 + i, df=False, window=2617 + i * 7,
                        seq_offset=offset)
    for i in range(2):
        residual_tls(cap, "example.com", 3.0 + i * 0.5)
        residual_tls(cap, "example.com", 3.2 + i * 0.5, server=SERVER2)
    return cap


@case("generic/curl-firewall-reset", "curl against an address a firewall REJECTs (no probe notes)",
      shows="What `curl https://signal.org/` records behind iptables REJECT --reject-with "
            "tcp-reset: the name resolves to 203.0.113.20, the SYN and its retry draw a RST+ACK "
            "shaped like a Linux kernel's (seq 0, window 0, DF, IP ID 0). No control, no "
            "TTL-limited SYNs: a firewall cannot be told from a closed port, so no ip.reset; "
            "but nothing of Signal was tested either: inconclusive (it was accessible).",
      source="Issue 13 case 1 of this project (a curl capture of the REJECT came out accessible); "
             "Linux net/ipv4/netfilter/nf_reject_ipv4.c (the REJECT's RST)",
      expect={"signal": ("inconclusive", [])})
def curl_firewall_reset() -> Capture:
    cap = Capture(seed=seed_of("curl-fw"))
    cap.dns(RESOLVER, "signal.org", at=0.0).respond([SERVER2], delay_ms=25, ttl=RESOLVER_TTL)
    for i in range(2):
        flow = cap.tcp(SERVER2, 443, at=0.1 + i, server_ttl=SERVER_TTL)
        flow.syn_refused(ttl=63, ip_id=0, df=True, delay_ms=4)
    return cap


# =========================================================================== clean captures

@case("clean/dns", "Clean DNS: every name resolves to the platform's own addresses",
      shows="twitter.com, www.facebook.com, vk.com and www.google.com resolve once each, with "
            "the resolver's IP fields, to addresses in the platforms' published networks.",
      source="Negative fixture (no censor)",
      expect={"facebook": ACCESSIBLE, "google": ACCESSIBLE, "twitter": ACCESSIBLE,
              "vkontakte": ACCESSIBLE})
def clean_dns() -> Capture:
    cap = Capture(seed=seed_of("c1"), hints={"probe_cc": "RU"})
    control_dns(cap, 0.0)
    for i, (name, answer) in enumerate((("twitter.com", "104.244.42.1"),
                                        ("www.facebook.com", "157.240.1.35"),
                                        ("vk.com", "87.240.190.72"),
                                        ("www.google.com", "142.250.185.100"))):
        cap.dns(RESOLVER, name, at=0.5 + i * 0.3).respond([answer], delay_ms=20 + i,
                                                          ttl=RESOLVER_TTL)
    return cap


@case("clean/tls", "Clean TLS: target SNIs complete their handshakes like the control",
      shows="ClientHellos with SNI twitter.com, vk.com and www.facebook.com get a ServerHello, "
            "like example.com, on the same address; vantage hints say UZ (so country-scoped "
            "drop signatures are exercised and must stay silent).",
      source="Negative fixture (no censor)",
      expect={"facebook": ACCESSIBLE, "twitter": ACCESSIBLE, "vkontakte": ACCESSIBLE})
def clean_tls() -> Capture:
    cap = Capture(seed=seed_of("c2"), hints={"probe_cc": "UZ"})
    control_tls(cap, 0.0)
    for i, sni in enumerate(("twitter.com", "vk.com", "www.facebook.com")):
        flow = target_tls(cap, sni, 1.0 + i)
        flow.server_hello()
        flow.client_close(at_ms=120)
    return cap


@case("clean/http", "Clean HTTP: target Hosts get the server's page",
      shows="HTTP requests with Host twitter.com and www.linkedin.com get 200 pages from the "
            "server, like example.com.",
      source="Negative fixture (no censor)",
      expect={"linkedin": ACCESSIBLE, "twitter": ACCESSIBLE})
def clean_http() -> Capture:
    cap = Capture(seed=seed_of("c3"), hints={"probe_cc": "RU"})
    control_http(cap, 0.0)
    for i, host in enumerate(("twitter.com", "www.linkedin.com")):
        flow = target_http(cap, host, 1.0 + i)
        flow.http_reply(http_response(200, "OK", [("Content-Type", "text/html")],
                                      b"<html><body>home</body></html>"))
    return cap


# --------------------------------------------------------------------------- driver

# =========================================================================== QUIC and ECH

def quic_answered(cap: Capture, sni: str, at: float, server: str = SERVER, *,
                  ech: bool = False) -> None:
    flow = cap.quic(server, 443, at=at, server_ttl=SERVER_TTL)
    flow.initial(sni, ech=ech)
    flow.answer()


def quic_unanswered(cap: Capture, sni: str, at: float, server: str = SERVER, *,
                    ech: bool = False, sport: int | None = None) -> None:
    """A QUIC client's first flight and its retransmission after 1 s, never answered."""
    flow = cap.quic(server, 443, at=at, server_ttl=SERVER_TTL, sport=sport)
    flow.initial(sni, ech=ech)
    flow.initial(sni, ech=ech, at_s=1.0)


def silent_tls_ech(cap: Capture, sni: str | None, at: float, *, esni: bool = False) -> None:
    """A ClientHello with ECH (or ESNI) retransmitted, never answered; the client gives up."""
    flow = cap.tcp(SERVER, 443, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.client_hello(sni, ech=not esni, esni=esni)
    for at_ms in (300, 900, 2100, 4500):
        flow.retransmit(at_ms=at_ms)
    flow.client_close(at_ms=10_000)


def plain_tls(cap: Capture, sni: str | None, at: float) -> None:
    flow = cap.tcp(SERVER, 443, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.client_hello(sni)
    flow.server_hello()
    flow.client_close(at_ms=120)


@case("cn/gfw-quic-sni-2024", "GFW QUIC SNI blocking (2024): Initials with a blocked SNI dropped, "
      "then the 3-tuple for about 180 s",
      shows="From a Chinese vantage point, QUIC Initials with SNI google.com (and their "
            "retransmission) get no answer while Initials with the control SNI to the same "
            "address do; later datagrams from the same client to the same address and port, "
            "from other source ports, stay unanswered 30 s, 90 s and 170 s after the trigger and "
            "are answered again at 190 s.",
      source="Zohaib et al., 'Exposing and Circumventing SNI-based QUIC Censorship of the Great "
             "Firewall of China', USENIX Security 2025 (gfw.report; blocking since 2024-04-07; "
             "residual block of (client, server, server port) for 180 s)",
      expect={"google": blocked(("google.com", "quic.sni_drop", ["cn-gfw-quic-sni-2024"]))})
def cn_gfw_quic_sni() -> Capture:
    cap = Capture(seed=seed_of("cnq1"), hints={"probe_cc": "CN"})
    quic_answered(cap, "example.com", 0.0)
    quic_unanswered(cap, "google.com", 1.0, sport=41000)
    for n, after in enumerate((30.0, 90.0, 170.0)):
        later = cap.quic(SERVER, 443, at=1.0, sport=41001 + n, server_ttl=SERVER_TTL)
        later.datagram(b"\x00" * 32, at_s=after)
    done = cap.quic(SERVER, 443, at=191.0, sport=41010, server_ttl=SERVER_TTL)
    done.datagram(b"\x00" * 32, at_s=0.0)
    done.server_datagram(b"\x00" * 32, at_s=0.05)
    return cap


@case("false-positive/quic-at-the-server", "QUIC captured at the server: an Initial the server "
      "did not answer is no drop",
      shows="Taken at the server (the client's datagrams arrive with TTL 47, the server's leave "
            "with 64): the Initial with the control SNI is answered; two flows carry Initials "
            "with SNI google.com that arrived and that the server did not answer, one followed by "
            "a later datagram of its flow, the other by nothing.  An Initial that arrived was not "
            "dropped on the path, and nothing shows the silent flow's client sent more: "
            "inconclusive, not quic.sni_drop (the client-side reading of the same packets).",
      source="gfw-report/usenixsecurity25-quic-sni experiments/ (USENIX Security 2025): its "
             "TTL-location traces are server-side captures of this shape",
      expect={"google": ("inconclusive", [])})
def quic_at_the_server() -> Capture:
    cap = Capture(seed=seed_of("fpqs"), client_ttl=47)
    control = cap.quic(SERVER, 443, at=0.0, server_ttl=64)
    control.initial("example.com")
    control.answer()
    silent = cap.quic(SERVER, 443, at=1.0, server_ttl=64)
    silent.initial("google.com")
    silent.initial("google.com", at_s=1.0)
    went_on = cap.quic(SERVER, 443, at=6.0, server_ttl=64)
    went_on.initial("google.com")
    went_on.datagram(b"probe payload", at_s=5.0)
    # A last datagram 30 s on: the silences before it are due, not pending.
    cap.quic(SERVER, 443, at=41.0, server_ttl=64).datagram(b"end", at_s=0.0)
    return cap


@case("false-positive/server-without-quic", "A platform whose servers do not speak QUIC: "
      "Initials unanswered whatever the SNI, TLS fine",
      shows="twitter.com resolves to 203.0.113.10. The probe's QUIC Initials there go "
            "unanswered, with the control SNI example.com as with twitter.com (three sends "
            "each over 2 s), while TLS on TCP 443 to the same address answers both names. "
            "Many servers never listen on UDP/443, and nothing in the capture shows this one "
            "does (no Initial to it answered; the built-in catalog does not list Twitter as "
            "serving QUIC): the QUIC test is not judged and Twitter is accessible, not "
            "quic.drop.",
      source="RFC 9114 section 3.1 (HTTP/3 is discovered through Alt-Svc or the HTTPS "
             "record: a server that advertises neither is not expected to answer QUIC); "
             "issue 14's quic.drop rests on UDP dropped at a server that speaks QUIC",
      expect={"twitter": ACCESSIBLE})
def fp_server_without_quic() -> Capture:
    cap = Capture(seed=seed_of("fpsq"))
    answer(cap, "twitter.com", [SERVER], 0.0)
    control_dns(cap, 0.0)
    for n, sni in enumerate(("example.com", "twitter.com", "twitter.com")):
        flow = cap.quic(SERVER, 443, at=1.0 + n * 2.5, server_ttl=SERVER_TTL)
        for resend in range(3):
            flow.initial(sni, at_s=resend * 0.67)
    for n, sni in enumerate(("example.com", "twitter.com")):
        browser_tls(cap, SERVER, sni, 9.0 + n).client_close(at_ms=600)
    # A last datagram 30 s on: the silences before it are due, not pending.
    cap.dns(RESOLVER, "end.invalid", at=40.0)
    return cap


@case("ru/tspu-ech-drop-2024", "Russia TSPU (November 2024): ECH with outer SNI "
      "cloudflare-ech.com dropped, over TCP and QUIC",
      shows="From a Russian vantage point, ClientHellos carrying an encrypted_client_hello "
            "extension with outer SNI cloudflare-ech.com go unanswered (TLS over TCP: two "
            "connections, each retransmitted for 10 s; QUIC: two Initials), while the same SNI without ECH is "
            "answered on both, and so is QUIC with the control SNI.",
      source="net4people/bbs#417 (moved from #393), 2024-11-07: both the SNI cloudflare-ech.com "
             "and an ECH extension are needed; packets dropped, no RST; TCP and QUIC",
      expect={"other": blocked(("cloudflare-ech.com", "tls.ech_drop", ["ru-tspu-ech-2024"]),
                               ("cloudflare-ech.com", "tls.ech_drop", ["ru-tspu-ech-2024"]))})
def ru_tspu_ech() -> Capture:
    cap = Capture(seed=seed_of("rue1"), hints={"probe_cc": "RU"})
    plain_tls(cap, "cloudflare-ech.com", 0.0)
    silent_tls_ech(cap, "cloudflare-ech.com", 1.0)
    silent_tls_ech(cap, "cloudflare-ech.com", 2.0)
    quic_answered(cap, "example.com", 13.0)
    quic_answered(cap, "cloudflare-ech.com", 14.0)
    quic_unanswered(cap, "cloudflare-ech.com", 15.0, ech=True)
    cap.quic(CONTROL_SERVER, 443, at=30.0).datagram(b"\x00" * 32, at_s=0.0)
    return cap


@case("cn/gfw-esni-2020", "GFW ESNI blocking (2020): ClientHellos with encrypted_server_name "
      "dropped",
      shows="From a Chinese vantage point, a TLS 1.3 ClientHello carrying the ESNI extension "
            "(0xffce) and no clear SNI is retransmitted for 10 s without an answer, twice; the same "
            "ClientHello without the extension to the same address gets a ServerHello.",
      source="Bock et al., 'Exposing and Circumventing China's Censorship of ESNI', 2020-08-07 "
             "(gfw.report, net4people/bbs#43): the 0xffce extension triggers it, packets from "
             "client to server dropped, residual 120 or 180 s on (client, server, server port)",
      expect={"other": blocked(("(ESNI without SNI)", "tls.ech_drop", ["cn-gfw-esni-2020"]))})
def cn_gfw_esni() -> Capture:
    cap = Capture(seed=seed_of("cne1"), hints={"probe_cc": "CN"})
    plain_tls(cap, None, 0.0)
    silent_tls_ech(cap, None, 1.0, esni=True)
    silent_tls_ech(cap, None, 2.0, esni=True)
    return cap


# =========================================================================== ordinary browsing traffic
# Captures a researcher takes of their own browser (tcpdump while browsing): nothing is
# censored, every platform is reachable, and nothing may read as blocked.

PLATFORM6 = "2001:db8:10::10"
"""A platform's IPv6 address (documentation range)."""
RESOLVER2 = "203.0.113.54"


def browser_tls(cap: Capture, server: str, sni: str, at: float) -> TcpFlow:
    """A browser's HTTPS connection: handshake, ClientHello, the server's flight, the
    client's Finished and first request, a response; left open (closed by the caller)."""
    flow = cap.tcp(server, 443, at=at, server_ttl=SERVER_TTL)
    flow.handshake()
    flow.client_hello(sni)
    flow.server_hello()
    flow.send(app_data(420), gap_ms=45)
    flow.server_send(app_data(4200), at_ms=90)
    flow.client_ack(at_ms=91)
    return flow


def answer(cap: Capture, name: str, addresses: list[str], at: float, *, qtype: str = "A",
           resolver: str = RESOLVER, cnames: tuple[str, ...] = ()) -> None:
    cap.dns(resolver, name, at=at, qtype=qtype).respond(addresses, delay_ms=14, ttl=RESOLVER_TTL,
                                                        cnames=cnames)


@case("false-positive/idle-keepalive", "A browser's idle connections: TCP keep-alive probes, "
      "then an RST, minutes later",
      shows="Six HTTPS connections to www.facebook.com's address (its name resolved through "
            "a CNAME) answer normally, then stay open and idle for four minutes: every 45 s "
            "the client sends a TCP keep-alive probe (an ACK one below the next sequence "
            "number, no data) and the server acknowledges it; at last the client resets them. "
            "The probes come more than 30 s apart, so each one reaches the analysis as a "
            "fragment of a connection whose handshake it has not seen: no connection attempt, "
            "and no connect_timeout (they read as 24 unanswered connections, ip.blackhole, "
            "before).",
      source="RFC 1122 section 4.2.3.6 and RFC 9293 section 3.8.4 (TCP keep-alives: an ACK "
             "with SEG.SEQ = SND.NXT-1 and no data, answered by an ACK); Linux tcp(7) "
             "TCP_KEEPIDLE / TCP_KEEPINTVL, which browsers and HTTP clients set on their sockets",
      expect={"facebook": ACCESSIBLE})
def fp_idle_keepalive() -> Capture:
    cap = Capture(seed=seed_of("fpb1"))
    answer(cap, "www.facebook.com", [SERVER], 0.0, cnames=("star-mini.c10r.facebook.com",))
    for n in range(6):
        flow = browser_tls(cap, SERVER, "www.facebook.com", 0.1 + n * 0.012)
        for k in range(1, 6):
            flow.keepalive(at_ms=45_000 * k)
        flow.client_close(at_ms=250_000, rst=True)
    return cap


@case("false-positive/happy-eyeballs", "Happy Eyeballs: the IPv6 attempt loses the race to IPv4",
      shows="www.facebook.com resolves to an IPv4 and an IPv6 address. On each of three page "
            "loads the browser sends a SYN to the IPv6 address, gets no SYN-ACK within 300 ms, "
            "starts IPv4, connects, and drops the IPv6 attempt (one SYN, never retransmitted). "
            "The client never waited for the IPv6 answer: no ip.blackhole of the IPv6 address "
            "(it was reported so before, with no IPv6 control in the capture).",
      source="RFC 8305 section 5 (Connection Attempt Delay, 250 ms recommended); curl's "
             "CURLOPT_HAPPY_EYEBALLS_TIMEOUT_MS documentation (Chrome and Firefox wait 300 ms); "
             "RFC 6298 section 2.1 (the first SYN retransmission is due after 1 s)",
      expect={"facebook": ACCESSIBLE})
def fp_happy_eyeballs() -> Capture:
    cap = Capture(seed=seed_of("fpb2"))
    answer(cap, "www.facebook.com", [SERVER], 0.0)
    answer(cap, "www.facebook.com", [PLATFORM6], 0.0, qtype="AAAA")
    for n in range(3):
        at = 0.1 + n * 20.0
        cap.tcp(PLATFORM6, 443, at=at, server_ttl=SERVER_TTL).syn_abandoned()
        browser_tls(cap, SERVER, "www.facebook.com", at + 0.3).client_close(at_ms=3000,
                                                                            rst=True)
    return cap


@case("false-positive/ipv6-broken-path", "IPv6 broken on the client's network, IPv4 fine",
      shows="www.youtube.com resolves to an IPv4 and an IPv6 address. A client without Happy "
            "Eyeballs tries IPv6 first: the SYN and its two retransmissions go unanswered; it "
            "then connects over IPv4 and is served. The control name example.com connects over "
            "IPv4 only. A control of the other IP version says nothing of the IPv6 path, and "
            "a network whose IPv6 is broken looks the same as a blocked address: "
            "inconclusive, not ip.blackhole (reported with the IPv4 control's confidence "
            "before).",
      source="RFC 8305 section 1 and RFC 6555 section 1 (IPv6 paths broken while IPv4 works, "
             "the reason clients race the two versions)",
      expect={"youtube": ("inconclusive", [])})
def fp_ipv6_broken_path() -> Capture:
    cap = Capture(seed=seed_of("fpb3"))
    control_dns(cap, 0.0)
    control_tls(cap, 0.2, server=CONTROL_SERVER)
    answer(cap, "www.youtube.com", [SERVER], 1.0, cnames=("youtube-ui.l.google.com",))
    answer(cap, "www.youtube.com", [PLATFORM6], 1.0, qtype="AAAA",
           cnames=("youtube-ui.l.google.com",))
    cap.tcp(PLATFORM6, 443, at=1.1, server_ttl=SERVER_TTL).syn_unanswered(retries=2)
    browser_tls(cap, SERVER, "www.youtube.com", 5.2).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/dns-retransmitted-query", "A query sent twice, answered twice with "
      "rotated addresses",
      shows="The stub resolver's query for www.youtube.com gets no answer within 1 s and is "
            "sent again with the same ID; the resolver answers both copies, each with the "
            "CNAME youtube-ui.l.google.com and a different address (the CDN rotates them). "
            "Two different answers to one query read as an injector racing the resolver "
            "(dns.injection) before; one answer per copy, with the same CNAME chain, is the "
            "resolver's own.",
      source="RFC 1035 section 4.2.1 and RFC 1536 section 1 (a stub retransmits a query "
             "unanswered in time); RFC 1794 (DNS answers rotated to balance load)",
      expect={"youtube": ACCESSIBLE})
def fp_dns_retransmitted_query() -> Capture:
    cap = Capture(seed=seed_of("fpb4"))
    control_dns(cap, 0.0)
    query = cap.dns(RESOLVER, "www.youtube.com", at=0.5)
    cap.emit(1.5, query.raw)
    for address, delay in ((SERVER, 1030.0), ("203.0.113.11", 1046.0)):
        query.respond([address], delay_ms=delay, ttl=RESOLVER_TTL,
                      cnames=["youtube-ui.l.google.com"])
    browser_tls(cap, SERVER, "www.youtube.com", 1.7).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/dns-a-aaaa-one-id", "A and AAAA queries sent from one socket with one ID",
      shows="The stub asks for twitter.com's A and AAAA records at once, from the same source "
            "port and with the same transaction ID; the resolver answers each (an IPv4 and an "
            "IPv6 address). Matched by ID alone the two answers looked like two different "
            "responses to one query (dns.injection); a response answers the question it "
            "carries, type included.",
      source="RFC 5452 section 9.1 (a response is matched to its query by ID and question); "
             "resolv.conf(5) options single-request / single-request-reopen (glibc sends the "
             "A and AAAA queries in parallel from one socket)",
      expect={"twitter": ACCESSIBLE})
def fp_dns_a_aaaa_one_id() -> Capture:
    cap = Capture(seed=seed_of("fpb5"))
    control_dns(cap, 0.0)
    four = cap.dns(RESOLVER, "twitter.com", at=0.5, txid=0x5A5A, sport=45123)
    six = cap.dns(RESOLVER, "twitter.com", at=0.5001, txid=0x5A5A, sport=45123, qtype="AAAA")
    four.respond([SERVER], delay_ms=15, ttl=RESOLVER_TTL)
    six.respond(["2001:db8:10::20"], delay_ms=16, ttl=RESOLVER_TTL)
    browser_tls(cap, SERVER, "twitter.com", 0.6).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/dns-truncated", "A truncated UDP answer, then the query over TCP",
      shows="The resolver answers the UDP query for twitter.com with the TC bit set and an "
            "empty answer section; the stub asks again over TCP and gets the address, and the "
            "site is reached. The control name was answered over UDP. The truncated response "
            "read as an empty answer while the control resolved (dns.error) before.",
      source="RFC 1035 section 4.2.1 (TC: the response was truncated, retry over TCP); "
             "RFC 7766 section 5",
      expect={"twitter": ACCESSIBLE})
def fp_dns_truncated() -> Capture:
    cap = Capture(seed=seed_of("fpb6"))
    control_dns(cap, 0.0)
    cap.dns(RESOLVER, "twitter.com", at=0.5).respond([], delay_ms=14, ttl=RESOLVER_TTL,
                                                      flags=0x8380)
    tcp53 = cap.tcp(RESOLVER, 53, at=0.52, server_ttl=RESOLVER_TTL, rtt_ms=14)
    tcp53.handshake()
    query = build_query("twitter.com", 1, 0x2B2B)
    tcp53.send(len(query).to_bytes(2, "big") + query)
    reply = dns_response(query, [SERVER], flags=0x8180, answer_ttl=300)
    tcp53.server_send(len(reply).to_bytes(2, "big") + reply, at_ms=15)
    tcp53.client_close(at_ms=16)
    tcp53.server_close(at_ms=30)
    browser_tls(cap, SERVER, "twitter.com", 0.6).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/dns-servfail-then-answer", "A resolver's transient SERVFAIL, then the "
      "answer",
      shows="The resolver answers the first query for www.facebook.com with SERVFAIL after 2 s "
            "(its upstream timed out); the stub asks again and gets the address, and the site "
            "is reached. One error and one resolved answer: the resolver failed once, it did "
            "not refuse the name (dns.error before).",
      source="RFC 1035 section 4.1.1 (RCODE 2, server failure: the server could not process "
             "the query); RFC 2308 section 7.1 (server failure is transient and cached briefly)",
      expect={"facebook": ACCESSIBLE})
def fp_dns_servfail_then_answer() -> Capture:
    cap = Capture(seed=seed_of("fpb7"))
    control_dns(cap, 0.0)
    cap.dns(RESOLVER, "www.facebook.com", at=0.5).respond([], delay_ms=2000, ttl=RESOLVER_TTL,
                                                           flags=0x8182)
    answer(cap, "www.facebook.com", [SERVER], 2.6)
    browser_tls(cap, SERVER, "www.facebook.com", 2.7).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/dns-refusing-resolver", "A second resolver that refuses every query",
      shows="The client's resolver list has two entries; the second one answers REFUSED to "
            "every name (the control example.com included): it serves another network. The "
            "first resolves every name and the sites are reached. REFUSED from a resolver that "
            "resolved nothing read as dns.error for each platform before; it is inconclusive "
            "now, as a dead resolver is.",
      source="RFC 1035 section 4.1.1 (RCODE 5, refused for policy reasons); RFC 5358 section 4 "
             "(recursive resolvers refuse clients outside the networks they serve)",
      expect={"facebook": ("inconclusive", []), "twitter": ("inconclusive", [])})
def fp_dns_refusing_resolver() -> Capture:
    cap = Capture(seed=seed_of("fpb8"))
    names = (("example.com", CONTROL_SERVER), ("www.facebook.com", SERVER),
             ("twitter.com", SERVER2))
    for n, (name, address) in enumerate(names):
        cap.dns(RESOLVER2, name, at=n * 0.5).respond([], delay_ms=6, ttl=RESOLVER_TTL,
                                                     flags=0x8185)
        answer(cap, name, [address], n * 0.5 + 0.001)
    browser_tls(cap, SERVER, "www.facebook.com", 2.0).client_close(at_ms=2000, rst=True)
    browser_tls(cap, SERVER2, "twitter.com", 2.5).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/preconnect-idle-close", "A preconnected socket closed by the server as "
      "the ClientHello leaves",
      shows="The browser opens two connections to www.facebook.com ahead of use (preconnect) "
            "and leaves them idle; after 10 s the server times them out (one with a FIN, one "
            "with an RST) just as the browser sends its ClientHello on each, so the close "
            "arrives after the ClientHello but acknowledges only the bytes before it, with "
            "the server's own TTL, DF and IP IDs. The browser retries on a fresh connection, "
            "which works. The trigger never reached the server: not tested (tls.sni_fin and "
            "tls.sni_reset before).",
      source="W3C Resource Hints, 'preconnect' (connections opened before a request needs "
             "them); RFC 9293 section 3.6 (a close crosses data in flight; segments for a "
             "closed connection draw a reset)",
      expect={"facebook": ACCESSIBLE})
def fp_preconnect_idle_close() -> Capture:
    cap = Capture(seed=seed_of("fpb9"))
    answer(cap, "www.facebook.com", [SERVER], 0.0)
    for n, rst in enumerate((False, True)):
        flow = cap.tcp(SERVER, 443, at=0.1 + n * 0.01, server_ttl=SERVER_TTL)
        flow.handshake()
        flow.t += 10.0
        flow.client_hello("www.facebook.com")
        flow.server_close_before_trigger(at_ms=0.6, rst=rst)
        flow.inject("R", at_ms=flow.rtt * 1000 + 1, ttl=SERVER_TTL, ip_id=0, df=True)
    browser_tls(cap, SERVER, "www.facebook.com", 10.3).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/capture-starts-mid-session", "A capture started while the browser's "
      "connections were open",
      shows="tcpdump starts while the browser holds five connections to www.facebook.com's "
            "address: the capture sees only their last packets (a bare ACK, data, the "
            "client's RST), never a SYN or a SYN-ACK; a new connection during the capture "
            "resolves the name and works. Such fragments are no attempts to connect (they "
            "read as five connect_timeouts against one connection, ip.blackhole, before).",
      source="RFC 9293 section 3.5 (a connection is opened by its SYN, SYN-ACK, ACK: "
             "packets without them belong to a connection opened earlier); tcpdump(1) "
             "captures from the moment it starts",
      expect={"facebook": ACCESSIBLE})
def fp_capture_starts_mid_session() -> Capture:
    cap = Capture(seed=seed_of("fpb10"))
    for n in range(5):
        earlier = cap.tcp(SERVER, 443, at=0.0, server_ttl=SERVER_TTL)
        earlier.trigger_ts = 0.05 + n * 0.4
        earlier.client_ack(at_ms=0)
        if n % 2:
            earlier.server_send(app_data(180), at_ms=28)
        earlier.client_close(at_ms=6000, rst=True)
    answer(cap, "www.facebook.com", [SERVER], 2.5, cnames=("star-mini.c10r.facebook.com",))
    browser_tls(cap, SERVER, "www.facebook.com", 2.6).client_close(at_ms=3000, rst=True)
    # The capture goes on: the fragments' silence is long over when it ends.
    cap.dns(RESOLVER, "example.com", at=20.0).respond([CONTROL_SERVER], delay_ms=14,
                                                       ttl=RESOLVER_TTL)
    return cap


@case("false-positive/redirect-within-platform", "A platform redirecting to another of its "
      "own names (www.facebook.com to m.facebook.com)",
      shows="Plain-HTTP requests for www.facebook.com are answered 302 to "
            "https://m.facebook.com/ (the mobile site), as sites send visitors between their "
            "own names (consent.google.com, web.whatsapp.com likewise). No control Host was "
            "asked of the server. A redirect to another name under the platform's own catalog "
            "domain is no blockpage (it read as http.blockpage, a redirect to another site, "
            "before).",
      source="RFC 9110 section 15.4.3 (302 Found: the resource is temporarily under another "
             "URI); the catalog lists facebook.com as Facebook's domain",
      expect={"facebook": ACCESSIBLE})
def fp_redirect_within_platform() -> Capture:
    cap = Capture(seed=seed_of("fpb11"))
    answer(cap, "www.facebook.com", [SERVER], 0.0)
    for n in range(2):
        flow = target_http(cap, "www.facebook.com", 0.1 + n)
        flow.http_reply(http_response(302, "Found", [("Location", "https://m.facebook.com/")]))
    return cap


def incomplete_chain_pki() -> dict[str, Any]:
    root_key, intermediate_key, leaf_key = _key(21), _key(22), _key(23)
    root = _name("Fixture Public Root CA", "fingerprint fixtures")
    intermediate = _name("Fixture Public TLS CA 1", "fingerprint fixtures")
    root_cert = _cert(root, root, root_key, root_key, 21, ca=True)
    intermediate_cert = _cert(intermediate, root, intermediate_key, root_key, 22, ca=True)
    leaf = _cert(_name("www.facebook.com", "Facebook"), intermediate, leaf_key,
                 intermediate_key, 23, ca=False, names=("www.facebook.com", "*.facebook.com"))
    der = serialization.Encoding.DER
    return {"ca_pem": root_cert.public_bytes(serialization.Encoding.PEM),
            "leaf_only": (leaf.public_bytes(der),),
            "complete": (leaf.public_bytes(der), intermediate_cert.public_bytes(der))}


@case("false-positive/tls-incomplete-chain", "A TLS 1.2 server that leaves out its "
      "intermediate certificate",
      shows="The server for www.facebook.com answers TLS 1.2 ClientHellos with its leaf "
            "certificate alone; the intermediate that signed it (and chains to the trusted "
            "root in ca.pem) is not sent, as misconfigured servers do and browsers repair by "
            "fetching it. The capture cannot show whether the leaf chains to a trusted root: "
            "inconclusive, not tls.mitm (reported before).",
      source="RFC 8446 section 4.4.2 and RFC 5246 section 7.4.2 (the server sends its chain, "
             "the root may be left out, intermediates may not); RFC 5280 section 4.2.2.1 "
             "(authority information access: where clients fetch a missing issuer)",
      expect={"facebook": ("inconclusive", [])},
      extra_files=lambda: {"ca.pem": incomplete_chain_pki()["ca_pem"]})
def fp_tls_incomplete_chain() -> Capture:
    pki = incomplete_chain_pki()
    cap = Capture(seed=seed_of("fpb12"))
    answer(cap, "www.facebook.com", [SERVER], 0.0)
    for n in range(2):
        flow = target_tls(cap, "www.facebook.com", 0.1 + n)
        flow.server_hello(pki["leaf_only"])
        flow.client_close(at_ms=300, rst=True)
    return cap


@case("false-positive/dns-aaaa-ignored", "A home router that ignores every AAAA query",
      shows="The resolver (a home router's forwarder) answers every A query, the control name "
            "example.com's included, and never answers an AAAA query: the stub asks again after "
            "5 s and gives up. The sites are reached over IPv4. Unanswered AAAA queries, "
            "compared with answered queries of another type, read as dns.drop for every name "
            "before; silence is now compared with queries of the same type only, and none of "
            "those was answered: inconclusive.",
      source="RFC 4074 section 4.1 (DNS servers that ignore AAAA queries, a known misbehaviour "
             "that delays or breaks IPv6-capable clients); resolv.conf(5) timeout (5 s) and "
             "attempts",
      expect={"facebook": ("inconclusive", []), "twitter": ("inconclusive", [])})
def fp_dns_aaaa_ignored() -> Capture:
    cap = Capture(seed=seed_of("fpb13"))
    control_dns(cap, 0.0)
    for n, (name, address) in enumerate((("www.facebook.com", SERVER), ("twitter.com", SERVER2))):
        at = 1.0 + n * 12.0
        answer(cap, name, [address], at)
        silent = cap.dns(RESOLVER, name, at=at + 0.0001, qtype="AAAA")
        cap.emit(at + 5.0, silent.raw)
        browser_tls(cap, address, name, at + 0.1).client_close(at_ms=2000, rst=True)
    return cap


@case("false-positive/dns-aaaa-nxdomain", "A resolver that answers AAAA queries with "
      "NXDOMAIN",
      shows="The resolver answers the A queries for www.facebook.com and twitter.com with their "
            "addresses and the AAAA queries for the same names with NXDOMAIN (a name cannot "
            "both exist and not: the server mishandles AAAA); the control name resolves and "
            "the sites are reached. An error for one query type of a name the same resolver "
            "resolved for another type is the resolver's (dns.nxdomain before).",
      source="RFC 4074 sections 4.2 and 4.3 (DNS servers that return Name Error or other "
             "error codes to AAAA queries for names that have A records)",
      expect={"facebook": ACCESSIBLE, "twitter": ACCESSIBLE})
def fp_dns_aaaa_nxdomain() -> Capture:
    cap = Capture(seed=seed_of("fpb14"))
    control_dns(cap, 0.0)
    for n, (name, address) in enumerate((("www.facebook.com", SERVER), ("twitter.com", SERVER2))):
        at = 1.0 + n
        answer(cap, name, [address], at)
        cap.dns(RESOLVER, name, at=at + 0.0001, qtype="AAAA").respond(
            [], delay_ms=15, ttl=RESOLVER_TTL, flags=0x8183)
        browser_tls(cap, address, name, at + 0.1).client_close(at_ms=2000, rst=True)
    return cap


def expected_summary(expect: Expectation) -> dict[str, Any]:
    return {platform: {"status": status,
                       "techniques": sorted({tech for _t, tech, _s in findings}),
                       "findings": sorted([t, tech, sorted(sigs)] for t, tech, sigs in findings)}
            for platform, (status, findings) in expect.items()}


def readme(item: Case) -> str:
    return (f"# {item.title}\n\n{item.shows}\n\n"
            f"Source: {item.source}\n\n"
            "Crafted by `scripts/make_fixtures.py` (documentation addresses only; regenerate with "
            "`python scripts/make_fixtures.py " + item.path + "`).\n")


def build_case(item: Case, folder: Path, library: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    item.build().write(folder / CAPTURE_NAME)
    if item.extra_files is not None:
        for name, data in item.extra_files().items():
            (folder / name).write_bytes(data)
    (folder / "README.md").write_text(readme(item))
    result, report = Fixture(folder).analyze(library)
    report.pop("generated", None)  # a wall-clock time: keeps regeneration byte-identical
    report.update({"inputs": [CAPTURE_NAME], "packets": result.packets,
                   "problems": result.problems})
    return report, verdict_summary(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="only cases whose path starts with these")
    parser.add_argument("--check", action="store_true",
                        help="build in a temporary folder and compare; write nothing")
    args = parser.parse_args(argv)
    library = load_library(REPO / "signatures")
    selected = [c for c in CASES if not args.prefixes or any(c.path.startswith(p)
                                                                for p in args.prefixes)]
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        for item in selected:
            staging = Path(scratch) / item.path
            report, summary = build_case(item, staging, library)
            want = expected_summary(item.expect)
            if summary != want:
                failures += 1
                print(f"WRONG {item.path}\n  expected {json.dumps(want, sort_keys=True)}\n"
                      f"  analysis {json.dumps(summary, sort_keys=True)}")
                continue
            if args.check:
                print(f"ok    {item.path}")
                continue
            size = install_fixture(staging, report, REPO / "pcaps" / item.path)
            print(f"wrote {item.path} ({size} bytes)")
    print(f"{len(selected)} cases, {failures} wrong")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
